import { describe, expect, it } from 'vitest';
import { FEBRL_COLUMNS, generateMessy, messyCsv, NICKNAMES } from '../../processors/identity/messy-logic.js';
import { parseFebrlLine } from '../../processors/identity/febrl-file.js';

const small = generateMessy({ people: 400, seed: 7 });
const personOf = (recId: string) => /^rec-(\d+)-/.exec(recId)?.[1] ?? '';

describe('generateMessy', () => {
  it('is reproducible from its seed and differs between seeds', () => {
    expect(messyCsv(generateMessy({ people: 400, seed: 7 }))).toBe(messyCsv(small));
    expect(messyCsv(generateMessy({ people: 400, seed: 8 }))).not.toBe(messyCsv(small));
  });

  it('writes every person 3 to 21 times under FEBRL rec ids, with no identifier', () => {
    const copies = new Map<string, number>();
    for (const row of small.rows) {
      expect(row.rec_id).toMatch(/^rec-\d+-(org|dup-\d+)$/);
      expect(row.soc_sec_id).toBe('');
      copies.set(personOf(row.rec_id), (copies.get(personOf(row.rec_id)) ?? 0) + 1);
    }
    expect(copies.size).toBe(400);
    expect(Math.min(...copies.values())).toBeGreaterThanOrEqual(3);
    expect(Math.max(...copies.values())).toBeLessThanOrEqual(21);
    expect(small.largestCluster).toBe(Math.max(...copies.values()));
    const mean = small.rows.length / copies.size;
    expect(mean).toBeGreaterThan(7);
    expect(mean).toBeLessThan(13);
  });

  it('makes households: different people at one address with one surname', () => {
    const originals = small.rows.filter((r) => r.rec_id.endsWith('-org'));
    const atAddress = new Map<string, Set<string>>();
    for (const r of originals) {
      if (!r.street_number || !r.address_1 || !r.surname || !r.postcode) continue;
      const key = [r.surname, r.street_number, r.address_1, r.postcode].join('|');
      atAddress.set(key, new Set([...(atAddress.get(key) ?? []), r.given_name]));
    }
    const shared = [...atAddress.values()].filter((names) => names.size > 1);
    expect(small.households).toBeGreaterThan(10);
    expect(shared.length).toBeGreaterThan(5);
  });

  it('gives many distinct people one common full name', () => {
    const people = new Set(
      generateMessy({ people: 2_000, seed: 3 })
        .rows.filter((r) => r.rec_id.endsWith('-org') && r.given_name === 'john' && r.surname === 'smith')
        .map((r) => r.rec_id),
    );
    expect(people.size).toBeGreaterThan(5);
  });

  it('varies duplicates: nicknames, swapped names, initials, missing and perturbed birth dates', () => {
    const big = generateMessy({ people: 2_000, seed: 5 });
    const original = new Map(big.rows.filter((r) => r.rec_id.endsWith('-org')).map((r) => [personOf(r.rec_id), r]));
    let nickname = 0;
    let swapped = 0;
    let initial = 0;
    let missingBirth = 0;
    let otherBirth = 0;
    for (const r of big.rows) {
      const o = original.get(personOf(r.rec_id))!;
      if (r === o) continue;
      if ((NICKNAMES[o.given_name] ?? []).includes(r.given_name)) nickname++;
      if (r.given_name === o.surname && r.surname === o.given_name && o.given_name !== o.surname) swapped++;
      if (r.given_name.length === 1) initial++;
      if (r.date_of_birth === '') missingBirth++;
      else if (o.date_of_birth !== '' && r.date_of_birth !== o.date_of_birth) otherBirth++;
    }
    for (const n of [nickname, swapped, initial, missingBirth, otherBirth]) expect(n).toBeGreaterThan(20);
  });

  it('writes a header and one line per row; broken lines carry an unescaped quote a strict parser rejects', () => {
    const broken = generateMessy({ people: 50, seed: 2, brokenLines: 3 });
    const lines = messyCsv(broken).trimEnd().split('\n');
    expect(lines[0]).toBe(FEBRL_COLUMNS.join(', '));
    expect(lines).toHaveLength(broken.rows.length + 1);
    const results = lines.slice(1).map((line) => parseFebrlLine(FEBRL_COLUMNS, line));
    expect(results.filter((r) => !r.ok)).toHaveLength(3);
    expect(results.filter((r) => r.ok)).toHaveLength(broken.rows.length - 3);
  });
});
