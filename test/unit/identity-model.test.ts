import { NO_ATTRIBUTES } from '../../processors/identity/logic.js';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ATTRIBUTES, LEVELS, prepare } from '../../processors/identity/compare.js';
import { febrlEvents } from '../../processors/producers/replay.js';
import { generateMessy } from '../../processors/identity/messy-logic.js';
import {
  DEFAULT_THRESHOLD,
  loadModel,
  probabilityOf,
  scorePair,
  trainEm,
  trainEmWithReport,
  weightBoundPreparedInto,
  weightPreparedInto,
  type MatchModel,
} from '../../processors/identity/model.js';
import { toIdentityRecord } from '../../processors/identity/record.js';
import type { IdentityRecord } from '../../processors/identity/types.js';
import type { IdentityAttributes } from '../../schemas/generated/types.js';

const committed = loadModel(readFileSync(new URL('../../processors/identity/model.json', import.meta.url), 'utf8'));

let serial = 0;
const rec = (over: Partial<IdentityAttributes> = {}): IdentityRecord =>
  toIdentityRecord('p', String(++serial), {
    ...NO_ATTRIBUTES,
    ...over,
  });

const PERSON: Partial<IdentityAttributes> = {
  firstName: 'Margaret',
  lastName: 'Thornbury',
  address: '14 Kelvin Grove',
  city: 'Glasgow',
  postcode: 'G12 8QQ',
  birthDate: '1961-04-19',
  ageGroup: '55-64',
  emailSha256: 'e'.repeat(64),
  phoneSha256: 'f'.repeat(64),
};

describe('scorePair', () => {
  it('weighs more agreement higher, and turns weight and prior into the posterior', () => {
    const base = rec(PERSON);
    // Each step replaces one more field of the other record with a clearly different value.
    const steps: Partial<IdentityAttributes>[] = [
      {},
      { phoneSha256: '1'.repeat(64) },
      { emailSha256: '2'.repeat(64) },
      { birthDate: '1990-11-02', ageGroup: '35-44' },
      { firstName: 'Dorothy' },
      { address: '3 Oak Avenue', postcode: 'G41 2AB' },
      { lastName: 'Ferguson' },
    ];
    let over: Partial<IdentityAttributes> = { ...PERSON };
    const weights = steps.map((step) => {
      over = { ...over, ...step };
      return scorePair(committed, base, rec(over)).weight;
    });
    for (let i = 1; i < weights.length; i++) expect(weights[i]).toBeLessThan(weights[i - 1]!);
    const score = scorePair(committed, base, rec(PERSON));
    expect(score.probability).toBeCloseTo(
      1 / (1 + 2 ** -(score.weight + Math.log2(committed.prior / (1 - committed.prior)))),
    );
    expect(probabilityOf(committed, Math.log2((1 - committed.prior) / committed.prior))).toBeCloseTo(0.5);
  });

  it('adds nothing for a missing value and something for each agreeing one', () => {
    const a = rec({ firstName: 'Margaret', lastName: 'Thornbury' });
    const b = rec({ firstName: 'Margaret', lastName: 'Thornbury' });
    const c = rec({ firstName: 'Margaret', lastName: 'Thornbury', city: 'Glasgow' });
    expect(scorePair(committed, a, c).weight).toBe(scorePair(committed, a, b).weight);
    expect(scorePair(committed, rec(PERSON), rec({ ...PERSON, postcode: null, address: null })).weight).toBeGreaterThan(
      scorePair(committed, rec(PERSON), rec({ ...PERSON, postcode: null, address: null, city: null })).weight,
    );
  });
});

describe('conflict rule', () => {
  const conflict = (over: Partial<IdentityAttributes>) =>
    scorePair(committed, rec(PERSON), rec({ ...PERSON, ...over }));

  it('vetoes a different email together with a different birth date or a different first name', () => {
    expect(conflict({ emailSha256: '2'.repeat(64), phoneSha256: null, birthDate: '1990-11-02' }).conflict).toBe(true);
    expect(conflict({ emailSha256: '2'.repeat(64), phoneSha256: null, firstName: 'Dorothy' }).conflict).toBe(true);
  });

  it('does not veto on one contradiction, a typo in the birth date or name, or when a phone is shared', () => {
    expect(conflict({ emailSha256: '2'.repeat(64), phoneSha256: null }).conflict).toBe(false);
    expect(conflict({ birthDate: '1990-11-02', phoneSha256: '1'.repeat(64) }).conflict).toBe(false);
    expect(conflict({ emailSha256: '2'.repeat(64), phoneSha256: null, birthDate: '1961-04-18' }).conflict).toBe(false);
    expect(conflict({ emailSha256: '2'.repeat(64), phoneSha256: null, firstName: 'Margret' }).conflict).toBe(false);
    expect(conflict({ emailSha256: '2'.repeat(64), phoneSha256: null, firstName: 'M' }).conflict).toBe(false);
    expect(conflict({ emailSha256: '2'.repeat(64), birthDate: '1990-11-02' }).conflict).toBe(false); // same phone
    expect(conflict({ emailSha256: null, phoneSha256: null, birthDate: '1990-11-02' }).conflict).toBe(false);
  });
});

/** A deterministic synthetic population: 300 persons, a third of them with a second, noisier record. */
function syntheticRecords(): { records: IdentityRecord[]; truePairs: number } {
  let s = 12345;
  const random = () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 4294967296;
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const firsts = ['olivia', 'amelia', 'isla', 'ava', 'mia', 'ivy', 'lily', 'isabella', 'rosie', 'sophia', 'grace'];
  const more = ['noah', 'oliver', 'george', 'arthur', 'leo', 'harry', 'oscar', 'archie', 'henry', 'theodore', 'jack'];
  const lasts = ['smith', 'jones', 'williams', 'taylor', 'brown', 'davies', 'evans', 'wilson', 'thomas', 'johnson'];
  const rare = ['ashworth', 'pemberton', 'fairclough', 'oddie', 'kershaw', 'bramall', 'hindle', 'sutcliffe', 'tetley'];
  const streets = ['kelvin grove', 'albert road', 'mill lane', 'church street', 'park avenue', 'station road'];
  const cities = ['leeds', 'york', 'bath', 'derby', 'hull', 'wakefield', 'bradford'];
  const typo = (v: string) => {
    const at = 1 + Math.floor(random() * (v.length - 1));
    return v.slice(0, at) + pick(['a', 'e', 'r', 't']) + v.slice(at + 1);
  };
  const records: IdentityRecord[] = [];
  let truePairs = 0;
  for (let p = 0; p < 300; p++) {
    const person = {
      firstName: pick([...firsts, ...more]),
      lastName: `${pick(lasts)} ${pick(rare)}`,
      address: `${1 + Math.floor(random() * 150)} ${pick(streets)}`,
      city: pick(cities),
      postcode: String(1000 + Math.floor(random() * 9000)),
      birthDate: `${1940 + Math.floor(random() * 60)}-0${1 + Math.floor(random() * 9)}-1${Math.floor(random() * 9)}`,
      phoneSha256: `phone-${p}`,
    };
    records.push(
      toIdentityRecord('a', `${p}`, { ...person, emailSha256: null, ageGroup: null, deviceFingerprint: null }),
    );
    if (p % 3 !== 0) continue;
    const dup: Record<string, string | null> = { ...person };
    for (let k = 0; k < 2; k++) {
      const field = pick(['firstName', 'lastName', 'address', 'city', 'postcode', 'birthDate', 'phoneSha256'] as const);
      const value = dup[field];
      if (value) dup[field] = random() < 0.3 ? null : field === 'phoneSha256' ? `other-${p}` : typo(value);
    }
    records.push(
      toIdentityRecord('b', `${p}`, {
        emailSha256: null,
        ageGroup: null,
        deviceFingerprint: null,
        firstName: dup.firstName ?? null,
        lastName: dup.lastName ?? null,
        address: dup.address ?? null,
        city: dup.city ?? null,
        postcode: dup.postcode ?? null,
        birthDate: dup.birthDate ?? null,
        phoneSha256: dup.phoneSha256 ?? null,
      }),
    );
    truePairs++;
  }
  return { records, truePairs };
}

describe('weightBoundPreparedInto', () => {
  it('is never below the weight, and is the weight when an address is missing', () => {
    const { rows } = generateMessy({ people: 120, seed: 3 });
    const records = febrlEvents(rows, 'm', { salt: 's', baseTimeMs: Date.UTC(2026, 0, 1) }).map((e) =>
      toIdentityRecord('m', e.platformCustomerId ?? '', e.identity ?? NO_ATTRIBUTES),
    );
    const model = trainEm(records, { randomPairs: 20_000 });
    const v = new Int8Array(ATTRIBUTES.length);
    let pairs = 0;
    let below = 0;
    for (let i = 0; i < records.length; i += 3) {
      for (let j = 1; j < records.length; j += 7) {
        const a = prepare(records[i] as IdentityRecord);
        const b = prepare(records[j] as IdentityRecord);
        const weight = weightPreparedInto(model, a, b, v);
        const bound = weightBoundPreparedInto(model, a, b, v);
        pairs++;
        if (bound < weight) below++;
        if (a.record.address === null || b.record.address === null) expect(bound).toBe(weight);
      }
    }
    expect(pairs).toBeGreaterThan(10_000);
    expect(below).toBe(0);
  }, 30_000);
});

describe('trainEm', () => {
  const { records, truePairs } = syntheticRecords();
  const { model, report } = trainEmWithReport(records);

  it('recovers m > u for agreement and m < u for disagreement, without labels', () => {
    for (const attr of ['firstName', 'lastName', 'address', 'postcode', 'birthDate', 'phoneSha256'] as const) {
      const { m, u } = model.attributes[attr]!;
      expect(m[0]).toBeGreaterThan(u[0]!);
      expect(m.at(-1)).toBeLessThan(u.at(-1)!);
    }
    expect(report.converged).toBe(true);
    // 100 true pairs among 400 records: the expected match count is close to it.
    expect(report.expectedMatches).toBeGreaterThan(truePairs * 0.9);
    expect(report.expectedMatches).toBeLessThan(truePairs * 1.1);
    expect(model.threshold).toBe(DEFAULT_THRESHOLD);
  });

  it('never lets a less similar level weigh more than a more similar one', () => {
    for (const attr of ATTRIBUTES) {
      const { m, u } = model.attributes[attr]!;
      const w = m.map((ml, l) => Math.log2(ml / u[l]!));
      for (let l = 1; l < w.length; l++) expect(w[l]).toBeLessThanOrEqual(w[l - 1]! + 1e-9);
    }
  });

  it('keeps attributes nobody has neutral, and is deterministic', () => {
    const { m, u } = model.attributes.emailSha256!;
    expect(m).toEqual(u);
    expect(trainEm(records).version).toBe(model.version);
    expect(loadModel(JSON.parse(JSON.stringify(model)))).toEqual(model);
  });
});

describe('loadModel', () => {
  const valid = (): MatchModel => JSON.parse(JSON.stringify(committed)) as MatchModel;

  it('accepts the committed default model, as text or parsed', () => {
    expect(committed.version).toMatch(/^fs-em-[0-9a-f]{8}$/);
    for (const attr of ATTRIBUTES) expect(committed.attributes[attr]!.m).toHaveLength(LEVELS[attr].length);
    expect(loadModel(valid())).toEqual(committed);
  });

  it('rejects a model that does not fit the comparisons', () => {
    const missing = valid();
    delete missing.attributes.postcode;
    expect(() => loadModel(missing)).toThrow(/postcode: missing/);
    const short = valid();
    short.attributes.city = { m: [0.5, 0.5], u: [0.5, 0.5] };
    expect(() => loadModel(short)).toThrow(/city\.m: 2 levels, expected 4/);
    const unknown = valid();
    unknown.attributes.shoeSize = { m: [0.5, 0.5], u: [0.5, 0.5] };
    expect(() => loadModel(unknown)).toThrow(/shoeSize: unknown attribute/);
    expect(() => loadModel({ ...valid(), prior: 0 })).toThrow(/prior/);
    expect(() => loadModel('{not json')).toThrow(/not JSON/);
  });
});
