/**
 * Deterministic synthetic retail data: persons with accounts on several platforms, their click sessions, purchases and
 * returns, plus the ground truth (which accounts are one person) that identity resolution is scored against.
 *
 * Pure: no I/O, no clock, no Math.random. Every random choice comes from one seeded Mersenne Twister shared with a
 * private faker instance (en_GB), so one seed always yields byte-identical output and other faker users in the same
 * process cannot disturb the sequence.
 *
 * What the data is meant to exercise:
 * - identity resolution: ~30% of persons hold accounts on 2-3 platforms, each platform with its own customer-id format,
 *   and the accounts disagree the way real profiles do (typos, nicknames/initials, Street/St, missing flat numbers,
 *   missing phone or birth date, work vs personal email, shared household devices); a few different persons share a
 *   common name and city (hard negatives);
 * - purchase intent: persons have their own purchase rates, repeat propensity, category preferences, join and churn
 *   times; most purchases are preceded in the days before by research sessions and sometimes an abandoned cart in the
 *   same category, while background browsing and never-converted carts add realistic noise;
 * - the optional contract fields: products have brands (six per category), some persons redeem coupons on some
 *   orders, and some purchases are followed days later by a written review (negative when the order
 *   came back). These draw from a hash of stable ids ({@link unitHash}), not from the seeded stream, so adding them
 *   left every other generated value exactly as it was.
 */
import { Faker, base, en, en_GB, generateMersenne53Randomizer } from '@faker-js/faker';
import type {
  BehaviorEvent,
  BehaviorType,
  IdentityAttributes,
  LineItem,
  Transaction,
} from '../../schemas/generated/types.js';
import { ageGroupOf, hashIdentity, type RawIdentity } from './identity-hash.js';

/** Options of {@link generateSample}; every field but `salt` has a default. */
export interface GenerateOptions {
  /** @default 42 */
  readonly seed?: number;
  /** Number of persons. @default 1247 */
  readonly customers?: number;
  /** Platform ids, each matching /^[a-z0-9][a-z0-9_-]{0,63}$/. @default DEFAULT_PLATFORMS */
  readonly platforms?: readonly string[];
  /** Expected number of transactions (purchases + returns); the result lands within a few percent. @default 3891 */
  readonly targetTransactions?: number;
  /** Length of the event window in days, at least 90. @default 120 */
  readonly days?: number;
  /** Exclusive end of the event window (epoch ms). @default Date.UTC(2026, 9, 1) */
  readonly endTimeMs?: number;
  /** IDENTITY_HASH_SALT: emails and phones leave the generator only as salted hashes. */
  readonly salt: string;
}

/** One account of one person: what identity resolution should reconstruct. */
export interface GroundTruthRow {
  readonly platform: string;
  readonly platformCustomerId: string;
  readonly personId: string;
}

/** The generated data set; both event arrays are sorted by eventTimeMs (ties by eventId). */
export interface GeneratedSample {
  readonly transactions: Transaction[];
  readonly behaviors: BehaviorEvent[];
  readonly groundTruth: GroundTruthRow[];
}

/** Headline counts of a sample, as the CLI prints them. */
export interface SampleSummary {
  readonly persons: number;
  readonly accounts: number;
  readonly platforms: number;
  /** Share of persons with accounts on more than one platform. */
  readonly crossPlatformShare: number;
  readonly transactions: number;
  readonly purchases: number;
  readonly returns: number;
  readonly behaviorEvents: number;
  readonly firstEventTimeMs: number | null;
  readonly lastEventTimeMs: number | null;
}

export const DEFAULT_PLATFORMS: readonly string[] = ['shopwave', 'marketly', 'urbancart'];

/** The fixed category list shared by every platform. */
export const CATEGORIES = [
  'electronics',
  'fashion',
  'home_garden',
  'beauty',
  'sports',
  'toys',
  'books',
  'grocery',
  'jewelry',
  'automotive',
  'health',
  'pet_supplies',
] as const;
export type Category = (typeof CATEGORIES)[number];

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;
const CURRENCY = 'GBP';
const PLATFORM_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

// Share of persons on more than one platform, and of those, on three (when there are three platforms).
const MULTI_PLATFORM_SHARE = 0.3;
const THREE_PLATFORM_SHARE = 0.3;
const RETURN_RATE = 0.05;
const PRODUCTS_PER_CATEGORY = 40;

interface CategorySpec {
  readonly code: string;
  /** Relative popularity across all shoppers. */
  readonly popularity: number;
  /** Price range in pence. */
  readonly minPrice: number;
  readonly maxPrice: number;
  /** Chance a bought line is returned, relative to the overall RETURN_RATE. */
  readonly returnFactor: number;
  /** Consumables are bought several at a time. */
  readonly multiUnit: boolean;
  readonly nouns: readonly string[];
  readonly brandSuffixes: readonly string[];
}

const CATEGORY_SPECS: Record<Category, CategorySpec> = {
  electronics: {
    code: 'ELE',
    popularity: 1.0,
    minPrice: 1499,
    maxPrice: 89999,
    returnFactor: 1.3,
    multiUnit: false,
    nouns: ['Headphones', 'Bluetooth Speaker', 'Smart Watch', 'Tablet', 'USB-C Charger', 'Laptop Stand', 'Webcam'],
    brandSuffixes: ['Audio', 'Tech', 'Digital', 'Electronics'],
  },
  fashion: {
    code: 'FAS',
    popularity: 1.4,
    minPrice: 899,
    maxPrice: 12999,
    returnFactor: 2.4,
    multiUnit: false,
    nouns: ['Denim Jacket', 'Trainers', 'Wool Jumper', 'Chinos', 'Summer Dress', 'Raincoat', 'T-Shirt', 'Ankle Boots'],
    brandSuffixes: ['& Co', 'Clothing', 'Apparel', 'London'],
  },
  home_garden: {
    code: 'HOM',
    popularity: 1.1,
    minPrice: 499,
    maxPrice: 29999,
    returnFactor: 0.8,
    multiUnit: false,
    nouns: ['Table Lamp', 'Cushion', 'Plant Pot', 'Duvet Cover', 'Garden Hose', 'Bath Towel', 'Wall Clock'],
    brandSuffixes: ['Home', 'Living', 'Interiors', 'Garden'],
  },
  beauty: {
    code: 'BEA',
    popularity: 1.0,
    minPrice: 399,
    maxPrice: 6999,
    returnFactor: 0.4,
    multiUnit: true,
    nouns: ['Face Serum', 'Moisturiser', 'Lipstick', 'Shampoo', 'Perfume', 'Nail Polish', 'Hair Dryer'],
    brandSuffixes: ['Beauty', 'Cosmetics', 'Skincare', 'Botanics'],
  },
  sports: {
    code: 'SPO',
    popularity: 0.7,
    minPrice: 999,
    maxPrice: 19999,
    returnFactor: 1.0,
    multiUnit: false,
    nouns: ['Yoga Mat', 'Running Shoes', 'Dumbbells', 'Football', 'Cycling Helmet', 'Water Bottle', 'Tennis Racket'],
    brandSuffixes: ['Sport', 'Athletics', 'Outdoor', 'Fitness'],
  },
  toys: {
    code: 'TOY',
    popularity: 0.7,
    minPrice: 499,
    maxPrice: 7999,
    returnFactor: 0.6,
    multiUnit: false,
    nouns: ['Building Blocks', 'Jigsaw Puzzle', 'Board Game', 'Plush Bear', 'Remote Control Car', 'Doll House'],
    brandSuffixes: ['Toys', 'Games', 'Kids', 'Play'],
  },
  books: {
    code: 'BOO',
    popularity: 0.8,
    minPrice: 399,
    maxPrice: 3499,
    returnFactor: 0.3,
    multiUnit: false,
    nouns: ['Crime Novel', 'Cookbook', 'Travel Guide', 'Biography', 'Children’s Book', 'Fantasy Novel'],
    brandSuffixes: ['Press', 'Books', 'Publishing', 'House'],
  },
  grocery: {
    code: 'GRO',
    popularity: 1.2,
    minPrice: 99,
    maxPrice: 2499,
    returnFactor: 0.1,
    multiUnit: true,
    nouns: ['Coffee Beans', 'Olive Oil', 'Green Tea', 'Dark Chocolate', 'Granola', 'Pasta Sauce', 'Honey'],
    brandSuffixes: ['Foods', 'Kitchen', 'Farms', 'Pantry'],
  },
  jewelry: {
    code: 'JEW',
    popularity: 0.3,
    minPrice: 1999,
    maxPrice: 49999,
    returnFactor: 2.0,
    multiUnit: false,
    nouns: ['Silver Necklace', 'Gold Earrings', 'Charm Bracelet', 'Engagement Ring', 'Cufflinks', 'Watch'],
    brandSuffixes: ['Jewellers', '& Sons', 'Gems', 'Goldsmiths'],
  },
  automotive: {
    code: 'AUT',
    popularity: 0.3,
    minPrice: 699,
    maxPrice: 24999,
    returnFactor: 0.8,
    multiUnit: false,
    nouns: ['Dash Cam', 'Car Vacuum', 'Wiper Blades', 'Phone Mount', 'Jump Starter', 'Seat Covers'],
    brandSuffixes: ['Motors', 'Auto', 'Garage', 'Motorworks'],
  },
  health: {
    code: 'HEA',
    popularity: 0.7,
    minPrice: 299,
    maxPrice: 4999,
    returnFactor: 0.3,
    multiUnit: true,
    nouns: ['Vitamin D', 'Protein Powder', 'First Aid Kit', 'Electric Toothbrush', 'Thermometer', 'Fish Oil'],
    brandSuffixes: ['Health', 'Pharma', 'Wellbeing', 'Nutrition'],
  },
  pet_supplies: {
    code: 'PET',
    popularity: 0.5,
    minPrice: 299,
    maxPrice: 5999,
    returnFactor: 0.4,
    multiUnit: true,
    nouns: ['Dog Food', 'Cat Litter', 'Dog Lead', 'Cat Scratcher', 'Pet Bed', 'Chew Toy', 'Bird Seed'],
    brandSuffixes: ['Pets', 'Petcare', 'Paws', 'Companion'],
  },
};

// Real UK cities with their postcode areas and rough population weights: common cities make blocking on city
// realistic (many unrelated people share "London"), which is exactly what identity resolution has to cope with.
const UK_CITIES: readonly (readonly [city: string, areas: readonly string[], weight: number])[] = [
  ['London', ['E', 'N', 'NW', 'SE', 'SW', 'W'], 12],
  ['Birmingham', ['B'], 4],
  ['Manchester', ['M'], 3.5],
  ['Leeds', ['LS'], 3],
  ['Glasgow', ['G'], 3],
  ['Liverpool', ['L'], 2.5],
  ['Bristol', ['BS'], 2.5],
  ['Sheffield', ['S'], 2.5],
  ['Edinburgh', ['EH'], 2.5],
  ['Cardiff', ['CF'], 2],
  ['Leicester', ['LE'], 1.8],
  ['Nottingham', ['NG'], 1.8],
  ['Newcastle upon Tyne', ['NE'], 1.6],
  ['Brighton', ['BN'], 1.4],
  ['Southampton', ['SO'], 1.3],
  ['Reading', ['RG'], 1.2],
  ['Oxford', ['OX'], 1],
  ['Cambridge', ['CB'], 1],
  ['York', ['YO'], 0.9],
  ['Coventry', ['CV'], 1.2],
  ['Norwich', ['NR'], 0.9],
  ['Exeter', ['EX'], 0.8],
  ['Plymouth', ['PL'], 0.9],
  ['Aberdeen', ['AB'], 0.9],
  ['Belfast', ['BT'], 1.2],
  ['Derby', ['DE'], 0.9],
  ['Milton Keynes', ['MK'], 0.9],
  ['Bath', ['BA'], 0.6],
];
const TOWN_POSTCODE_AREAS = ['GU', 'HP', 'CM', 'SG', 'TN', 'ME', 'KT', 'WD', 'AL', 'LU', 'PE', 'IP', 'CO', 'SS', 'WR'];
// Share of persons in a small faker-generated town rather than one of the cities above.
const TOWN_SHARE = 0.25;

// Common UK surnames and formal first names (the ones with nicknames): they produce natural same-name collisions and
// give the nickname noise something to work with.
const COMMON_SURNAMES = [
  'Smith',
  'Jones',
  'Taylor',
  'Brown',
  'Williams',
  'Wilson',
  'Johnson',
  'Davies',
  'Robinson',
  'Wright',
  'Thompson',
  'Evans',
  'Walker',
  'White',
  'Roberts',
  'Green',
  'Hall',
  'Wood',
  'Jackson',
  'Clarke',
];
const NICKNAMES: Readonly<Record<string, readonly string[]>> = {
  William: ['Will', 'Bill', 'Billy'],
  Robert: ['Rob', 'Bob', 'Bobby'],
  James: ['Jim', 'Jamie'],
  Thomas: ['Tom', 'Tommy'],
  Michael: ['Mike', 'Mick'],
  Christopher: ['Chris'],
  Daniel: ['Dan', 'Danny'],
  Matthew: ['Matt'],
  Jonathan: ['Jon', 'Jonny'],
  Samuel: ['Sam'],
  Alexander: ['Alex'],
  Benjamin: ['Ben'],
  Joseph: ['Joe'],
  Richard: ['Rich', 'Rick'],
  Edward: ['Ed', 'Ted'],
  Anthony: ['Tony'],
  Nicholas: ['Nick'],
  Andrew: ['Andy'],
  Stephen: ['Steve'],
  David: ['Dave'],
  Elizabeth: ['Liz', 'Beth', 'Lizzie'],
  Katherine: ['Kate', 'Katie'],
  Margaret: ['Maggie', 'Meg'],
  Jennifer: ['Jen', 'Jenny'],
  Rebecca: ['Becky', 'Becca'],
  Victoria: ['Vicky', 'Tori'],
  Charlotte: ['Lottie', 'Charlie'],
  Samantha: ['Sam'],
  Alexandra: ['Alex', 'Lexi'],
  Jessica: ['Jess'],
  Abigail: ['Abby'],
  Eleanor: ['Ellie', 'Nell'],
  Deborah: ['Debbie', 'Deb'],
  Susan: ['Sue', 'Susie'],
};
const FORMAL_NAMES: Record<'male' | 'female', readonly string[]> = {
  male: Object.keys(NICKNAMES).slice(0, 20),
  female: Object.keys(NICKNAMES).slice(20),
};

const STREET_SUFFIXES: readonly (readonly [full: string, short: string])[] = [
  ['Street', 'St'],
  ['Road', 'Rd'],
  ['Avenue', 'Ave'],
  ['Lane', 'Ln'],
  ['Close', 'Cl'],
  ['Drive', 'Dr'],
  ['Crescent', 'Cres'],
  ['Place', 'Pl'],
  ['Gardens', 'Gdns'],
  ['Terrace', 'Terr'],
  ['Grove', 'Gr'],
  ['Court', 'Ct'],
];
const STREET_BASES = ['High', 'Church', 'Station', 'Park', 'Victoria', 'Mill', 'Manor', 'Queens', 'Kings', 'Albert'];
const EMAIL_DOMAINS = ['gmail.com', 'hotmail.co.uk', 'yahoo.co.uk', 'outlook.com', 'btinternet.com', 'icloud.com'];
const SEARCH_MODIFIERS = ['best', 'cheap', 'sale', 'gift', 'uk', 'reviews', 'deal', 'new'];

// Relative session starts by hour of day (UK time ~ UTC): quiet nights, a lunchtime bump, an evening peak.
const HOUR_WEIGHTS = [
  0.25, 0.12, 0.06, 0.05, 0.05, 0.1, 0.3, 0.6, 0.8, 0.9, 1, 1.05, 1.2, 1.15, 1, 1, 1.05, 1.15, 1.35, 1.6, 1.8, 1.7, 1.2,
  0.6,
];

interface Product {
  readonly id: string;
  readonly name: string;
  readonly category: Category;
  readonly brand: string;
  readonly priceMinor: number;
}

interface Address {
  flat: number | null;
  number: number;
  street: string;
  suffix: readonly [string, string];
}

interface Person {
  readonly id: string;
  readonly index: number;
  readonly sex: 'male' | 'female';
  firstName: string;
  lastName: string;
  readonly birthDate: string;
  readonly ageGroup: string | null;
  address: Address;
  city: string;
  postcode: string;
  householdOf: Person | null;
  email: string;
  workEmail: string | null;
  phone: string | null;
  devices: string[];
  /** Category weights, aligned with CATEGORIES. */
  prefs: number[];
  /** Unscaled purchase propensity (0 for browsers who never buy). */
  readonly rawRate: number;
  /** Chance a purchase is followed by another within two weeks. */
  readonly repeatProb: number;
  /** Background browse sessions per active day. */
  readonly browseRate: number;
  /** After this, purchases and browsing drop sharply (a lapsed customer); null when active to the end. */
  churnMs: number | null;
  accounts: Account[];
}

interface Account {
  readonly person: Person;
  readonly platform: string;
  readonly platformIndex: number;
  /** Order of this platform among the person's accounts; 0 is the main account. */
  readonly rank: number;
  readonly createdMs: number;
  /** Share of the person's purchases and browsing that happens here. */
  share: number;
  customerId: string;
  raw: RawIdentity;
  identities: Map<string, IdentityAttributes>;
}

type PlanKind = 'purchase' | 'research' | 'abandon' | 'browse' | 'register';

interface SessionPlan {
  readonly kind: PlanKind;
  /** Session start, except for 'purchase' where it is the purchase time. */
  readonly anchorMs: number;
  readonly loggedIn: boolean;
  readonly category: Category;
  readonly products: readonly Product[];
  readonly quantities: readonly number[];
}

/**
 * Generates a complete, deterministic data set: the same options always give identical output.
 * @throws RangeError for unusable options (days < 90, no platforms, a bad platform id, empty salt).
 */
export function generateSample(options: GenerateOptions): GeneratedSample {
  const seed = options.seed ?? 42;
  const customers = options.customers ?? 1247;
  const platforms = options.platforms ?? DEFAULT_PLATFORMS;
  const targetTransactions = options.targetTransactions ?? 3891;
  const days = options.days ?? 120;
  const endMs = options.endTimeMs ?? Date.UTC(2026, 9, 1);
  const salt = options.salt;
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  if (!Number.isInteger(customers) || customers < 1) throw new RangeError(`customers must be >= 1, got ${customers}`);
  if (!(days >= 90)) throw new RangeError(`days must be >= 90, got ${days}`);
  if (!Number.isSafeInteger(endMs)) throw new RangeError(`endTimeMs must be an integer epoch-ms, got ${endMs}`);
  if (!(targetTransactions >= 0)) throw new RangeError(`targetTransactions must be >= 0`);
  if (platforms.length === 0) throw new RangeError('at least one platform is required');
  if (new Set(platforms).size !== platforms.length) throw new RangeError('platform ids must be distinct');
  for (const p of platforms) if (!PLATFORM_PATTERN.test(p)) throw new RangeError(`platform "${p}" is not a valid id`);
  if (!salt) throw new RangeError('salt is required');

  return new Generator(seed, customers, platforms, targetTransactions, days, endMs, salt).run();
}

/** Counts for the CLI and the tests. */
export function summarizeSample(sample: GeneratedSample): SampleSummary {
  const platformsByPerson = new Map<string, Set<string>>();
  for (const row of sample.groundTruth) {
    const set = platformsByPerson.get(row.personId) ?? new Set<string>();
    set.add(row.platform);
    platformsByPerson.set(row.personId, set);
  }
  const multi = [...platformsByPerson.values()].filter((s) => s.size > 1).length;
  const times = [...sample.transactions, ...sample.behaviors].map((e) => e.eventTimeMs);
  const returns = sample.transactions.filter((t) => t.kind === 'RETURN').length;
  return {
    persons: platformsByPerson.size,
    accounts: sample.groundTruth.length,
    platforms: new Set(sample.groundTruth.map((r) => r.platform)).size,
    crossPlatformShare: platformsByPerson.size === 0 ? 0 : multi / platformsByPerson.size,
    transactions: sample.transactions.length,
    purchases: sample.transactions.length - returns,
    returns,
    behaviorEvents: sample.behaviors.length,
    firstEventTimeMs: times.length === 0 ? null : times.reduce((a, b) => Math.min(a, b)),
    lastEventTimeMs: times.length === 0 ? null : times.reduce((a, b) => Math.max(a, b)),
  };
}

class Generator {
  private readonly next: () => number;
  private readonly faker: Faker;
  private readonly startMs: number;
  private readonly catalogue = new Map<Category, Product[]>();
  private readonly productWeights = new Map<Category, number[]>();
  private readonly persons: Person[] = [];
  private readonly usedEmails = new Set<string>();
  private readonly usedOrderIds = new Set<string>();
  private readonly transactions: Transaction[] = [];
  private readonly behaviors: BehaviorEvent[] = [];

  constructor(
    seed: number,
    private readonly customers: number,
    private readonly platforms: readonly string[],
    private readonly targetTransactions: number,
    days: number,
    private readonly endMs: number,
    private readonly salt: string,
  ) {
    const randomizer = generateMersenne53Randomizer(seed);
    this.next = () => randomizer.next();
    this.faker = new Faker({ locale: [en_GB, en, base], randomizer });
    this.startMs = endMs - Math.round(days * DAY_MS);
  }

  run(): GeneratedSample {
    this.buildCatalogue();
    this.buildPersons();
    this.makeHouseholds();
    this.makeHardNegatives();
    for (const person of this.persons) this.assignContacts(person);
    const accounts = this.buildAccounts();
    this.assignCustomerIds(accounts);
    this.simulate(accounts);

    const byTime = <T extends { eventTimeMs: number; eventId: string }>(a: T, b: T) =>
      a.eventTimeMs - b.eventTimeMs || (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0);
    const groundTruth = accounts
      .map((a) => ({ platform: a.platform, platformCustomerId: a.customerId, personId: a.person.id }))
      .sort((a, b) =>
        a.personId === b.personId ? a.platform.localeCompare(b.platform) : a.personId < b.personId ? -1 : 1,
      );
    return {
      transactions: this.transactions.sort(byTime),
      behaviors: this.behaviors.sort(byTime),
      groundTruth,
    };
  }

  // ---------------------------------------------------------------- random helpers

  private chance(p: number): boolean {
    return this.next() < p;
  }

  /** Integer in [min, max]. */
  private int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  private uniform(min: number, max: number): number {
    return min + this.next() * (max - min);
  }

  private pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }

  private weightedIndex(weights: readonly number[]): number {
    const total = weights.reduce((a, b) => a + b, 0);
    let r = this.next() * total;
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i] ?? 0;
      if (r < 0) return i;
    }
    return weights.length - 1;
  }

  private normal(): number {
    // Box-Muller; 1 - u keeps the logarithm finite.
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  private poisson(mean: number): number {
    if (mean <= 0) return 0;
    if (mean > 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * this.normal()));
    const limit = Math.exp(-mean);
    let k = 0;
    let p = this.next();
    while (p > limit) {
      k++;
      p *= this.next();
    }
    return k;
  }

  private digits(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += String(this.int(0, 9));
    return s;
  }

  /** A moment in [fromMs, toMs) whose time of day follows HOUR_WEIGHTS. */
  private timeBetween(fromMs: number, toMs: number): number {
    if (toMs - fromMs <= HOUR_MS) return Math.floor(this.uniform(fromMs, toMs));
    for (let attempt = 0; attempt < 8; attempt++) {
      const dayStart = Math.floor(this.uniform(fromMs, toMs) / DAY_MS) * DAY_MS;
      const t = dayStart + this.weightedIndex(HOUR_WEIGHTS) * HOUR_MS + Math.floor(this.next() * HOUR_MS);
      if (t >= fromMs && t < toMs) return t;
    }
    return Math.floor(this.uniform(fromMs, toMs));
  }

  // ---------------------------------------------------------------- catalogue

  private buildCatalogue(): void {
    for (const category of CATEGORIES) {
      const spec = CATEGORY_SPECS[category];
      const brands = Array.from(
        { length: 6 },
        () => `${this.faker.person.lastName()} ${this.pick(spec.brandSuffixes)}`,
      );
      const products: Product[] = [];
      for (let i = 0; i < PRODUCTS_PER_CATEGORY; i++) {
        const brand = this.pick(brands);
        const noun = this.pick(spec.nouns);
        // Log-uniform price, then shop pricing (x.99) in integer pence.
        const raw = Math.exp(this.uniform(Math.log(spec.minPrice), Math.log(spec.maxPrice)));
        const priceMinor = raw < 1000 ? Math.max(99, Math.round(raw / 10) * 10 - 1) : Math.round(raw / 100) * 100 - 1;
        products.push({
          id: `${spec.code}-${String(i + 1).padStart(4, '0')}`,
          name: `${brand} ${this.faker.commerce.productAdjective()} ${noun}`,
          category,
          brand,
          priceMinor,
        });
      }
      this.catalogue.set(category, products);
      // Zipf-like popularity: a few best sellers, a long tail.
      this.productWeights.set(
        category,
        products.map((_, i) => 1 / Math.pow(i + 1, 0.8)),
      );
    }
  }

  private productOf(category: Category): Product {
    const products = this.catalogue.get(category) ?? [];
    const weights = this.productWeights.get(category) ?? [];
    const product = products[this.weightedIndex(weights)];
    if (!product) throw new Error(`no products in ${category}`);
    return product;
  }

  // ---------------------------------------------------------------- persons

  private buildPersons(): void {
    const towns = Array.from({ length: 40 }, () => ({
      city: this.faker.location.city(),
      area: this.pick(TOWN_POSTCODE_AREAS),
    }));
    const cityWeights = UK_CITIES.map(([, , w]) => w);
    const categoryWeights = CATEGORIES.map((c) => CATEGORY_SPECS[c].popularity);

    for (let index = 0; index < this.customers; index++) {
      const sex = this.chance(0.5) ? 'female' : 'male';
      const firstName = this.chance(0.3) ? this.pick(FORMAL_NAMES[sex]) : this.faker.person.firstName(sex);
      const lastName = this.chance(0.3) ? this.pick(COMMON_SURNAMES) : this.faker.person.lastName();
      const ageYears = this.int(18, 82);
      const birthYear = new Date(this.endMs).getUTCFullYear() - ageYears - 1;
      const birthMs = Date.UTC(birthYear, 0, 1) + Math.floor(this.next() * 365) * DAY_MS;
      const birthDate = new Date(birthMs).toISOString().slice(0, 10);
      let city: string;
      let area: string;
      if (this.chance(TOWN_SHARE)) {
        const town = this.pick(towns);
        city = town.city;
        area = town.area;
      } else {
        const entry = UK_CITIES[this.weightedIndex(cityWeights)] ?? UK_CITIES[0];
        if (!entry) throw new Error('no cities');
        city = entry[0];
        area = this.pick(entry[1]);
      }

      // A few favourite categories carry most of a person's interest; the rest follows global popularity.
      const prefs = categoryWeights.map((w) => w * 0.3);
      const favourites = this.int(1, 3);
      for (let f = 0; f < favourites; f++) {
        const c = this.weightedIndex(categoryWeights);
        prefs[c] = (prefs[c] ?? 0) + ([6, 3, 1.5][f] ?? 1);
      }

      const buys = !this.chance(0.08);
      const person: Person = {
        id: `person-${String(index + 1).padStart(5, '0')}`,
        index,
        sex,
        firstName,
        lastName,
        birthDate,
        ageGroup: ageGroupOf(birthDate, this.endMs),
        address: this.newAddress(),
        city,
        postcode: this.newPostcode(area),
        householdOf: null,
        email: '',
        workEmail: null,
        phone: null,
        devices: [],
        prefs,
        rawRate: buys ? Math.exp(0.85 * this.normal()) : 0,
        repeatProb: this.uniform(0.08, 0.35),
        browseRate: Math.exp(Math.log(0.045) + 0.6 * this.normal()),
        churnMs: this.chance(0.12) ? this.uniform(this.startMs + 20 * DAY_MS, this.endMs - 14 * DAY_MS) : null,
        accounts: [],
      };
      this.persons.push(person);
    }
  }

  private newAddress(): Address {
    const street = this.chance(0.35) ? this.pick(STREET_BASES) : this.faker.person.lastName();
    return {
      flat: this.chance(0.22) ? this.int(1, 24) : null,
      number: this.int(1, 180),
      street,
      suffix: this.pick(STREET_SUFFIXES),
    };
  }

  /** A well-formed UK postcode in the given area, e.g. "LS6 2QT". */
  private newPostcode(area: string): string {
    const letters = 'ABDEFGHJLNPQRSTUWXYZ'; // the inward code never uses C, I, K, M, O, V
    const letter = () => letters.charAt(Math.floor(this.next() * letters.length));
    return `${area}${this.int(1, 20)} ${this.int(0, 9)}${letter()}${letter()}`;
  }

  /** ~9% of persons share a home (address, usually surname, sometimes a family tablet) with an earlier person. */
  private makeHouseholds(): void {
    for (const person of this.persons) {
      if (person.index === 0 || !this.chance(0.09)) continue;
      const partner = this.persons[this.int(0, person.index - 1)];
      if (!partner || partner.householdOf || this.persons.some((p) => p.householdOf === partner)) continue;
      person.householdOf = partner;
      person.address = { ...partner.address };
      person.city = partner.city;
      person.postcode = partner.postcode;
      if (this.chance(0.7)) person.lastName = partner.lastName;
    }
  }

  /** Different persons with one common name in one city: the pairs a matcher must not merge. */
  private makeHardNegatives(): void {
    const wanted = Math.max(2, Math.round(this.customers / 100));
    const inHousehold = (p: Person) => p.householdOf !== null || this.persons.some((q) => q.householdOf === p);
    const used = new Set<Person>();
    for (let made = 0, attempt = 0; made < wanted && attempt < wanted * 50; attempt++) {
      const a = this.pick(this.persons);
      const b = this.pick(this.persons);
      if (a === b || a.sex !== b.sex || used.has(a) || used.has(b) || inHousehold(a) || inHousehold(b)) continue;
      used.add(a);
      used.add(b);
      if (!COMMON_SURNAMES.includes(a.lastName)) a.lastName = this.pick(COMMON_SURNAMES);
      b.firstName = a.firstName;
      b.lastName = a.lastName;
      b.city = a.city;
      b.postcode = this.newPostcode(a.postcode.replace(/\d.*$/, ''));
      b.address = this.newAddress();
      made++;
    }
  }

  private assignContacts(person: Person): void {
    const first = person.firstName.toLowerCase().replace(/[^a-z]/g, '');
    const last = person.lastName.toLowerCase().replace(/[^a-z]/g, '');
    for (let attempt = 0; ; attempt++) {
      const sep = this.pick(['.', '_', '', '.']);
      const suffix = attempt > 0 || this.chance(0.4) ? String(this.int(1, 99)) : '';
      const local = this.chance(0.15) ? `${first.charAt(0)}${last}${suffix}` : `${first}${sep}${last}${suffix}`;
      const email = `${local}@${this.pick(EMAIL_DOMAINS)}`;
      if (!this.usedEmails.has(email)) {
        this.usedEmails.add(email);
        person.email = email;
        break;
      }
    }
    if (this.chance(0.35)) {
      const company = this.faker.person
        .lastName()
        .toLowerCase()
        .replace(/[^a-z]/g, '');
      person.workEmail = `${first.charAt(0)}.${last}@${company}${this.pick(['-group', 'corp', '', '-ltd'])}.co.uk`;
    }
    // UK mobile numbers (07xxx xxxxxx); 15% never give a phone number anywhere.
    person.phone = this.chance(0.85) ? `07${this.int(300, 999)}${this.digits(6)}` : null;
    const ownDevices = this.int(1, 3);
    for (let d = 0; d < ownDevices; d++) person.devices.push(this.newDevice());
    // Half the households share a family device: the same fingerprint behind two different persons.
    if (person.householdOf && this.chance(0.5)) {
      const shared = person.householdOf.devices.at(-1) ?? this.newDevice();
      person.devices.push(shared);
    }
  }

  private newDevice(): string {
    return `dev-${this.faker.string.hexadecimal({ length: 16, casing: 'lower', prefix: '' })}`;
  }

  // ---------------------------------------------------------------- accounts and identity noise

  private buildAccounts(): Account[] {
    const n = this.platforms.length;
    const platformWeights = this.platforms.map((_, i) => 1 / (i + 1));
    const accounts: Account[] = [];
    for (const person of this.persons) {
      let count = 1;
      if (n >= 2 && this.chance(MULTI_PLATFORM_SHARE)) count = n >= 3 && this.chance(THREE_PLATFORM_SHARE) ? 3 : 2;
      const chosen: number[] = [];
      while (chosen.length < count) {
        const i = this.weightedIndex(platformWeights.map((w, j) => (chosen.includes(j) ? 0 : w)));
        chosen.push(i);
      }
      const joinsInWindow = this.chance(0.18);
      chosen.forEach((platformIndex, rank) => {
        let createdMs: number;
        if (rank === 0) {
          createdMs = joinsInWindow
            ? this.timeBetween(this.startMs, this.endMs - 21 * DAY_MS)
            : this.startMs - this.int(2, 1200) * DAY_MS - this.int(0, DAY_MS - 1);
        } else {
          createdMs = this.chance(0.5)
            ? this.startMs - this.int(2, 900) * DAY_MS - this.int(0, DAY_MS - 1)
            : this.timeBetween(this.startMs, this.endMs - 14 * DAY_MS);
        }
        const account: Account = {
          person,
          platform: this.platforms[platformIndex] ?? '',
          platformIndex,
          rank,
          createdMs,
          share: count === 1 ? 1 : rank === 0 ? 0.6 : 0.4 / (count - 1),
          customerId: '',
          raw: {},
          identities: new Map(),
        };
        account.raw = this.noisyIdentity(person, rank);
        person.accounts.push(account);
        accounts.push(account);
      });
    }
    return accounts;
  }

  /** The identity a platform holds for a person: the main account is mostly clean, the others drift. */
  private noisyIdentity(person: Person, rank: number): RawIdentity {
    const main = rank === 0;
    let firstName: string | null = person.firstName;
    const f = this.next();
    if (f < (main ? 0.02 : 0.08)) firstName = typo(person.firstName, this.next);
    else if (f < (main ? 0.05 : 0.18)) {
      const nicks = NICKNAMES[person.firstName];
      firstName =
        nicks && this.chance(0.8) ? this.pick(nicks) : `${person.firstName.charAt(0)}${this.chance(0.5) ? '.' : ''}`;
    } else if (f < (main ? 0.06 : 0.21)) firstName = null;
    let lastName: string | null = person.lastName;
    const l = this.next();
    if (l < (main ? 0.015 : 0.07)) lastName = typo(person.lastName, this.next);
    else if (l < (main ? 0.02 : 0.09)) lastName = person.lastName.toUpperCase();

    const addr = person.address;
    let address: string | null;
    if (this.chance(main ? 0.03 : 0.08)) address = null;
    else {
      const abbreviate = this.chance(main ? 0.2 : 0.45);
      const dropFlat = addr.flat !== null && this.chance(main ? 0.1 : 0.45);
      const street = `${addr.street} ${abbreviate ? addr.suffix[1] : addr.suffix[0]}`;
      const flat = addr.flat === null || dropFlat ? '' : this.chance(0.7) ? `Flat ${addr.flat}, ` : `${addr.flat}/`;
      address = `${flat}${addr.number}${this.chance(0.1) ? ',' : ''} ${street}`;
      if (flat.endsWith('/')) address = `${flat}${addr.number} ${street}`;
      if (!main && this.chance(0.05)) address = address.toLowerCase();
    }
    const city = this.chance(main ? 0.02 : 0.05) ? null : this.chance(0.05) ? person.city.toLowerCase() : person.city;
    let postcode: string | null = person.postcode;
    if (this.chance(main ? 0.02 : 0.06)) postcode = null;
    else if (this.chance(main ? 0.05 : 0.15)) postcode = person.postcode.replace(' ', '');
    else if (this.chance(0.05)) postcode = person.postcode.toLowerCase();

    // Birth date given, only an age bracket known, or nothing.
    const b = this.next();
    const birthDate = b < (main ? 0.65 : 0.5) ? person.birthDate : null;
    const ageGroup = b < (main ? 0.9 : 0.85) ? person.ageGroup : null;

    let phone: string | null = null;
    if (person.phone && this.chance(main ? 0.75 : 0.6)) phone = formatPhone(person.phone, this.int(0, 3));

    let email: string | null;
    const e = this.next();
    if (main) email = e < 0.92 ? person.email : e < 0.97 && person.workEmail ? person.workEmail : null;
    else if (e < 0.55) email = person.email;
    else if (e < 0.65) email = emailVariant(person.email, this.chance(0.5));
    else if (e < 0.85) email = person.workEmail ?? person.email;
    else if (e < 0.93) email = null;
    else email = `${person.email.replace(/@.*$/, '')}${this.int(1, 9)}@${this.pick(EMAIL_DOMAINS)}`; // an old address

    return { email, phone, firstName, lastName, address, city, postcode, birthDate, ageGroup };
  }

  /** Each platform numbers customers its own way, in sign-up order (so ids do not line up across platforms). */
  private assignCustomerIds(accounts: Account[]): void {
    this.platforms.forEach((platform, platformIndex) => {
      const mine = accounts
        .filter((a) => a.platformIndex === platformIndex)
        .sort((a, b) => a.createdMs - b.createdMs || a.person.index - b.person.index);
      const prefix =
        platform
          .replace(/[^a-z]/g, '')
          .slice(0, 2)
          .toUpperCase() || 'PX';
      let serial = 100_000 + this.int(0, 50_000);
      const used = new Set<string>();
      for (const account of mine) {
        serial += this.int(1, 9); // other customers signed up in between
        switch (platformIndex % 3) {
          case 0:
            account.customerId = `${prefix}-${serial}`;
            break;
          case 1: {
            let id: string;
            do id = `${prefix.toLowerCase()}_${this.faker.string.alphanumeric({ length: 10, casing: 'lower' })}`;
            while (used.has(id));
            used.add(id);
            account.customerId = id;
            break;
          }
          default:
            account.customerId = String(serial * 7).padStart(10, '0');
        }
      }
    });
  }

  private identityOf(account: Account, deviceId: string | null): IdentityAttributes {
    const key = deviceId ?? '';
    let identity = account.identities.get(key);
    if (!identity) {
      // ageGroup is always passed (or null with no birth date), so hashIdentity never consults the clock.
      identity = hashIdentity({ ...account.raw, deviceFingerprint: deviceId }, this.salt);
      account.identities.set(key, identity);
    }
    return identity;
  }

  // ---------------------------------------------------------------- activity

  private simulate(accounts: Account[]): void {
    // The number of "fresh" purchases is fixed up front so the total lands near the target whatever the seed: each
    // fresh purchase brings ~1/(1-q) purchases through repeats (a little less: repeats past the window end are cut),
    // and RETURN_RATE returns come on top. The fresh purchases are dealt to accounts in proportion to the person's
    // purchase propensity, the account's share of it, and how long the account is active (a multinomial draw).
    const targetPurchases = this.targetTransactions / (1 + RETURN_RATE);
    const weights = accounts.map((a) => a.person.rawRate * a.share * this.activeWeight(a));
    const withRepeats = accounts.reduce((sum, a, i) => sum + (weights[i] ?? 0) / (1 - a.person.repeatProb * 0.93), 0);
    const totalWeight = weights.reduce((a, b) => a + b, 0);
    const fresh = withRepeats > 0 ? Math.round((targetPurchases * totalWeight) / withRepeats) : 0;
    const cumulative: number[] = [];
    weights.reduce((sum, w) => {
      cumulative.push(sum + w);
      return sum + w;
    }, 0);
    const counts = new Array<number>(accounts.length).fill(0);
    for (let i = 0; i < fresh; i++) {
      const r = this.next() * totalWeight;
      let lo = 0;
      let hi = cumulative.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if ((cumulative[mid] ?? 0) > r) hi = mid;
        else lo = mid + 1;
      }
      counts[lo] = (counts[lo] ?? 0) + 1;
    }

    accounts.forEach((account, i) => {
      this.render(account, this.planSessions(account, counts[i] ?? 0));
    });
  }

  /** Activity-weighted length (ms) of an account's time in the window: after churn a person is ~10% as active. */
  private activeWeight(account: Account): number {
    const from = Math.max(this.startMs, account.createdMs);
    const to = this.endMs - HOUR_MS;
    if (to <= from) return 0;
    const churn = account.person.churnMs;
    if (churn === null || churn >= to) return to - from;
    if (churn <= from) return 0.1 * (to - from);
    return churn - from + 0.1 * (to - churn);
  }

  /** A time in the account's active span, respecting churn. */
  private activeTime(account: Account): number {
    const from = Math.max(this.startMs, account.createdMs) + HOUR_MS;
    const to = this.endMs - HOUR_MS;
    const churn = account.person.churnMs;
    if (churn !== null && churn > from && churn < to && this.next() < (churn - from) / this.activeWeight(account)) {
      return this.timeBetween(from, churn);
    }
    if (churn !== null && churn > from && churn < to) return this.timeBetween(churn, to);
    return this.timeBetween(from, to);
  }

  private preferredCategory(person: Person): Category {
    return CATEGORIES[this.weightedIndex(person.prefs)] ?? 'fashion';
  }

  private basket(category: Category, person: Person): { products: Product[]; quantities: number[] } {
    const lines = this.chance(0.7) ? 1 : this.chance(0.73) ? 2 : 3;
    const products: Product[] = [];
    const quantities: number[] = [];
    for (let i = 0; i < lines; i++) {
      const cat = i === 0 || this.chance(0.6) ? category : this.preferredCategory(person);
      const product = this.productOf(cat);
      if (products.includes(product)) continue;
      products.push(product);
      const multi = CATEGORY_SPECS[cat].multiUnit;
      quantities.push(this.chance(multi ? 0.6 : 0.88) ? 1 : this.int(2, multi ? 6 : 3));
    }
    return { products, quantities };
  }

  private planSessions(account: Account, fresh: number): SessionPlan[] {
    const person = account.person;
    const from = Math.max(this.startMs, account.createdMs);
    const to = this.endMs - HOUR_MS;
    const plans: SessionPlan[] = [];
    if (to - from < 2 * HOUR_MS) return plans;
    const activeMs = this.activeWeight(account);

    if (account.createdMs >= this.startMs) {
      plans.push({
        kind: 'register',
        anchorMs: account.createdMs,
        loggedIn: true,
        category: this.preferredCategory(person),
        products: [],
        quantities: [],
      });
    }

    // Purchases: a Poisson number of "fresh" purchases, each possibly followed by repeats within two weeks.
    const purchaseTimes: number[] = [];
    for (let i = 0; i < fresh; i++) {
      let t = this.activeTime(account);
      purchaseTimes.push(t);
      while (this.chance(person.repeatProb)) {
        t = t + this.uniform(1, 14) * DAY_MS;
        if (t >= to) break;
        purchaseTimes.push(t);
      }
    }
    let lastCategory: Category | null = null;
    for (const t of purchaseTimes.sort((a, b) => a - b)) {
      const category: Category = lastCategory && this.chance(0.35) ? lastCategory : this.preferredCategory(person);
      lastCategory = category;
      const { products, quantities } = this.basket(category, person);
      plans.push({ kind: 'purchase', anchorMs: t, loggedIn: true, category, products, quantities });
      // Intent build-up: research sessions in the days before, skewed towards the purchase...
      if (this.chance(0.6)) {
        const sessions = this.int(1, 3);
        for (let s = 0; s < sessions; s++) {
          const before = (0.05 + 6 * Math.pow(this.next(), 2)) * DAY_MS;
          const at = t - before;
          if (at <= from) continue;
          plans.push({
            kind: 'research',
            anchorMs: at,
            loggedIn: this.chance(0.8),
            category,
            products: this.chance(0.6) ? products.slice(0, 1) : [],
            quantities: [],
          });
        }
      }
      // ...and sometimes a cart left behind that the purchase later completes.
      if (this.chance(0.25)) {
        const at = t - this.uniform(0.05, 4) * DAY_MS;
        if (at > from) {
          plans.push({
            kind: 'abandon',
            anchorMs: at,
            loggedIn: this.chance(0.85),
            category,
            products: products.slice(0, 1),
            quantities: [quantities[0] ?? 1],
          });
        }
      }
    }

    // Carts that never convert, and plain browsing: the noise a model has to see through.
    const activeDays = activeMs / DAY_MS;
    const abandoned = this.poisson(account.share * (0.3 + 0.12 * purchaseTimes.length) + 0.004 * activeDays);
    for (let i = 0; i < abandoned; i++) {
      const category = this.preferredCategory(person);
      const { products, quantities } = this.basket(category, person);
      plans.push({
        kind: 'abandon',
        anchorMs: this.activeTime(account),
        loggedIn: this.chance(0.7),
        category,
        products,
        quantities,
      });
    }
    const browsing = this.poisson(person.browseRate * account.share * activeDays);
    for (let i = 0; i < browsing; i++) {
      plans.push({
        kind: 'browse',
        anchorMs: this.activeTime(account),
        loggedIn: this.chance(0.7),
        category: this.preferredCategory(person),
        products: [],
        quantities: [],
      });
    }
    // Every account shows up at least once (a login), so the ground truth never names an invisible account.
    if (!plans.some((p) => p.loggedIn)) {
      plans.push({
        kind: 'browse',
        anchorMs: this.activeTime(account),
        loggedIn: true,
        category: this.preferredCategory(person),
        products: [],
        quantities: [],
      });
    }
    return plans.sort((a, b) => a.anchorMs - b.anchorMs);
  }

  private searchQuery(category: Category, product: Product | undefined): string {
    const noun = (product ? product.name.split(' ').slice(-2).join(' ') : this.pick(CATEGORY_SPECS[category].nouns))
      .toLowerCase()
      .replace(/’/g, "'");
    const r = this.next();
    if (r < 0.3) return `${this.pick(SEARCH_MODIFIERS)} ${noun}`;
    if (r < 0.45 && product) return `${(product.brand.split(' ')[0] ?? '').toLowerCase()} ${noun}`;
    return noun;
  }

  private render(account: Account, plans: readonly SessionPlan[]): void {
    const person = account.person;
    let identified = false;
    for (const plan of plans) {
      const deviceId = this.chance(0.7) ? (person.devices[0] ?? this.pick(person.devices)) : this.pick(person.devices);
      const sessionId = this.faker.string.uuid();
      const customerId = plan.loggedIn ? account.customerId : null;
      const steps: { type: BehaviorType; gapMs: number; fields: Partial<BehaviorEvent> }[] = [];
      const step = (type: BehaviorType, fields: Partial<BehaviorEvent> = {}) =>
        steps.push({ type, gapMs: Math.floor(this.uniform(15_000, 200_000)), fields });
      const view = (p: Product) =>
        step('VIEW', { productId: p.id, category: p.category, priceMinor: p.priceMinor, currency: CURRENCY });
      const extraViews = (n: number) => {
        for (let i = 0; i < n; i++) view(this.productOf(plan.category));
      };

      // IDENTIFY: registration, the first login seen in the window, and ~25% of later logged-in sessions.
      if (plan.loggedIn && (plan.kind === 'register' || !identified || this.chance(0.25))) {
        step('IDENTIFY', { identity: this.identityOf(account, deviceId) });
        identified = true;
      }
      if (plan.kind !== 'register' && this.chance(plan.kind === 'browse' ? 0.3 : 0.55)) {
        step('SEARCH', { category: plan.category, searchQuery: this.searchQuery(plan.category, plan.products[0]) });
      }

      switch (plan.kind) {
        case 'register':
          extraViews(this.int(0, 3));
          break;
        case 'browse':
          extraViews(this.int(1, 5));
          break;
        case 'research':
          extraViews(this.int(1, 4));
          for (const p of plan.products) view(p);
          extraViews(this.int(0, 2));
          break;
        case 'abandon':
        case 'purchase': {
          extraViews(this.int(0, 3));
          let units = 0;
          let total = 0;
          plan.products.forEach((p, i) => {
            const q = plan.quantities[i] ?? 1;
            units += q;
            total += q * p.priceMinor;
            view(p);
            step('ADD_TO_CART', {
              productId: p.id,
              category: p.category,
              quantity: q,
              priceMinor: p.priceMinor,
              currency: CURRENCY,
            });
          });
          if (plan.kind === 'abandon') {
            const first = plan.products[0];
            if (first && this.chance(0.1)) {
              step('REMOVE_FROM_CART', {
                productId: first.id,
                category: first.category,
                quantity: plan.quantities[0] ?? 1,
                priceMinor: first.priceMinor,
                currency: CURRENCY,
              });
            } else if (this.chance(0.25)) {
              step('CHECKOUT_START', {
                category: plan.category,
                quantity: units,
                priceMinor: total,
                currency: CURRENCY,
              });
            }
            break;
          }
          step('CHECKOUT_START', { category: plan.category, quantity: units, priceMinor: total, currency: CURRENCY });
          const orderId = this.newOrderId(account);
          step('PURCHASE', {
            productId: plan.products.length === 1 ? (plan.products[0]?.id ?? null) : null,
            category: plan.category,
            quantity: units,
            priceMinor: total,
            currency: CURRENCY,
            orderId,
          });
          this.emitTransaction(account, plan, orderId, sessionId, deviceId);
          break;
        }
      }

      // A purchase session ends at the purchase time; the other sessions start at their anchor.
      const span = steps.reduce((sum, s, i) => (i === 0 ? sum : sum + s.gapMs), 0);
      let t = plan.kind === 'purchase' ? plan.anchorMs - span : plan.anchorMs;
      const lastAllowed = this.endMs - 1;
      steps.forEach((s, i) => {
        if (i > 0) t += s.gapMs;
        this.behaviors.push({
          eventId: `${account.platform}:${sessionId}:${i + 1}`,
          eventTimeMs: Math.min(Math.floor(t), lastAllowed),
          platform: account.platform,
          platformCustomerId: customerId,
          sessionId,
          deviceId,
          type: s.type,
          productId: null,
          category: null,
          searchQuery: null,
          quantity: null,
          priceMinor: null,
          currency: null,
          orderId: null,
          identity: null,
          reviewText: null,
          reviewSentiment: null,
          ...s.fields,
        });
      });
    }
  }

  private newOrderId(account: Account): string {
    const prefix =
      account.platform
        .replace(/[^a-z]/g, '')
        .slice(0, 2)
        .toUpperCase() || 'OR';
    for (;;) {
      const id = `${prefix}${this.digits(2)}-${this.faker.string.alphanumeric({ length: 8, casing: 'upper' })}`;
      if (!this.usedOrderIds.has(id)) {
        this.usedOrderIds.add(id);
        return id;
      }
    }
  }

  private emitTransaction(account: Account, plan: SessionPlan, orderId: string, sessionId: string, deviceId: string) {
    const lineItems: LineItem[] = plan.products.map((p, i) => ({
      productId: p.id,
      productName: p.name,
      category: p.category,
      brand: p.brand,
      quantity: plan.quantities[i] ?? 1,
      unitPriceMinor: p.priceMinor,
    }));
    const purchase: Transaction = {
      eventId: `${account.platform}:order:${orderId}`,
      eventTimeMs: Math.floor(plan.anchorMs),
      platform: account.platform,
      platformCustomerId: account.customerId,
      orderId,
      kind: 'PURCHASE',
      lineItems,
      totalMinor: lineItems.reduce((sum, l) => sum + l.quantity * l.unitPriceMinor, 0),
      currency: CURRENCY,
      sessionId,
      deviceId,
      identity: this.identityOf(account, deviceId),
      couponCode: couponOf(account.person.id, orderId),
    };
    this.transactions.push(purchase);

    // Returns: fashion and jewellery come back most, groceries almost never; a few days to weeks later.
    const factor = lineItems.reduce((m, l) => Math.max(m, CATEGORY_SPECS[l.category as Category].returnFactor), 0);
    const returns = this.chance(RETURN_RATE * factor * 1.22);
    this.emitReview(account, purchase, plan.products[0], returns);
    if (!returns) return;
    const returnedAt = purchase.eventTimeMs + Math.floor(this.uniform(2, 28) * DAY_MS);
    if (returnedAt >= this.endMs - MINUTE_MS) return;
    const returned = lineItems.filter((_, i) => i === 0 || this.chance(0.4));
    const returnLines = returned.map((l) => ({ ...l, quantity: -(l.quantity > 1 ? this.int(1, l.quantity) : 1) }));
    const returnOrderId = `${orderId}-R1`;
    this.transactions.push({
      eventId: `${account.platform}:order:${returnOrderId}`,
      eventTimeMs: returnedAt,
      platform: account.platform,
      platformCustomerId: account.customerId,
      orderId: returnOrderId,
      kind: 'RETURN',
      lineItems: returnLines,
      totalMinor: returnLines.reduce((sum, l) => sum + l.quantity * l.unitPriceMinor, 0),
      currency: CURRENCY,
      sessionId: null,
      deviceId: null,
      identity: this.identityOf(account, null),
      couponCode: null,
    });
  }

  /**
   * Some purchases get a written review 1–14 days later, sent as a VIEW of the product (the page it is written on),
   * logged in, outside any session. Whether, when and what come from {@link unitHash} of the order, not the seeded
   * stream; an order that comes back gets a negative review, others mostly positive ones.
   */
  private emitReview(account: Account, purchase: Transaction, product: Product | undefined, returned: boolean): void {
    const key = `${account.person.id}|${purchase.orderId}`;
    const propensity = 0.6 * unitHash(`review-rate|${account.person.id}`);
    if (!product || unitHash(`review|${key}`) >= propensity) return;
    const at = purchase.eventTimeMs + Math.floor((1 + 13 * unitHash(`review-at|${key}`)) * DAY_MS);
    if (at >= this.endMs - MINUTE_MS) return;
    const tone = returned ? 0 : unitHash(`review-tone|${key}`) < 0.75 ? 2 : 1;
    const texts = REVIEW_TEXTS[tone] ?? [];
    const text = texts[Math.floor(unitHash(`review-text|${key}`) * texts.length)] ?? '';
    this.behaviors.push({
      eventId: `${account.platform}:review:${purchase.orderId}`,
      eventTimeMs: at,
      platform: account.platform,
      platformCustomerId: account.customerId,
      sessionId: null,
      deviceId: null,
      type: 'VIEW',
      productId: product.id,
      category: product.category,
      searchQuery: null,
      quantity: null,
      priceMinor: product.priceMinor,
      currency: CURRENCY,
      orderId: null,
      identity: null,
      reviewText: text.replace('{product}', product.name),
      reviewSentiment: null, // the identity resolver computes it; platforms never send it
    });
  }
}

/** Review texts by tone: negative, mixed, positive (`{product}` is replaced by the product's name). */
const REVIEW_TEXTS: readonly (readonly string[])[] = [
  [
    'Disappointed with the {product}. Poor quality and it broke within a week, sent it back.',
    'Terrible fit and the colour was nothing like the photos. Returned it.',
    'Not worth the money. Cheap materials, arrived damaged.',
    'Awful. The {product} stopped working after two days and support was useless.',
  ],
  [
    'The {product} is okay. Does the job, nothing special.',
    'Decent value but delivery was slow.',
    'Fine for the price, though the instructions were confusing.',
  ],
  [
    'Love the {product}! Great quality and fast delivery.',
    'Excellent, exactly as described. Would recommend.',
    'Really happy with this, perfect gift and my daughter loves it.',
    'Brilliant value, works perfectly. Will buy from this brand again.',
    'Good product, nice packaging, happy with it.',
  ],
];

/** Coupon codes the sample platforms hand out. */
const COUPON_CODES = ['WELCOME10', 'SPRING15', 'FREESHIP', 'LOYAL20', 'FLASH25'] as const;

/**
 * The coupon a person redeems on an order, or null: each person has a propensity (most none, some now and then, a few
 * nearly always), each order a draw against it. From {@link unitHash}, not the seeded stream.
 */
function couponOf(personId: string, orderId: string): string | null {
  const propensity = [0, 0, 0, 0.1, 0.3, 0.8][Math.floor(unitHash(`coupon-rate|${personId}`) * 6)] ?? 0;
  if (unitHash(`coupon|${personId}|${orderId}`) >= propensity) return null;
  return COUPON_CODES[Math.floor(unitHash(`coupon-code|${orderId}`) * COUPON_CODES.length)] ?? null;
}

/** A number in [0, 1) from a string (FNV-1a, 32 bits): deterministic draws that leave the seeded stream untouched. */
export function unitHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h / 2 ** 32;
}

// ---------------------------------------------------------------- pure noise helpers

const KEYBOARD_NEIGHBOURS: Readonly<Record<string, string>> = {
  a: 'qwsz',
  b: 'vghn',
  c: 'xdfv',
  d: 'serfcx',
  e: 'wsdr',
  f: 'drtgvc',
  g: 'ftyhbv',
  h: 'gyujnb',
  i: 'ujko',
  j: 'huikmn',
  k: 'jiolm',
  l: 'kop',
  m: 'njk',
  n: 'bhjm',
  o: 'iklp',
  p: 'ol',
  q: 'wa',
  r: 'edft',
  s: 'awedxz',
  t: 'rfgy',
  u: 'yhji',
  v: 'cfgb',
  w: 'qase',
  x: 'zsdc',
  y: 'tghu',
  z: 'asx',
};

/** One keyboard slip in a name: a neighbour key, a dropped or doubled letter, or two letters swapped. */
export function typo(name: string, random: () => number): string {
  if (name.length < 3) return name;
  // Never touch the first letter: people rarely get it wrong, and blocking on it stays meaningful.
  const at = 1 + Math.floor(random() * (name.length - 1));
  const ch = name.charAt(at);
  const op = Math.floor(random() * 4);
  if (op === 0) {
    const near = KEYBOARD_NEIGHBOURS[ch.toLowerCase()];
    if (near) return name.slice(0, at) + near.charAt(Math.floor(random() * near.length)) + name.slice(at + 1);
    return name.slice(0, at) + name.slice(at + 1);
  }
  if (op === 1) return name.slice(0, at) + name.slice(at + 1);
  if (op === 2) return name.slice(0, at) + ch + name.slice(at);
  // Transposition with the following letter (the preceding one at the end); swapping twins would change nothing.
  const j = at === name.length - 1 ? at - 1 : at + 1;
  const [lo, hi] = j < at ? [j, at] : [at, j];
  if (name.charAt(lo) === name.charAt(hi)) return name.slice(0, at) + name.slice(at + 1);
  return name.slice(0, lo) + name.charAt(hi) + name.charAt(lo) + name.slice(hi + 1);
}

/** Phone formats that all normalize to the same digits (a +44 form would hash differently, see normalizePhone). */
function formatPhone(digits: string, style: number): string {
  const a = digits.slice(0, 5);
  const b = digits.slice(5);
  switch (style) {
    case 0:
      return `${a} ${b}`;
    case 1:
      return digits;
    case 2:
      return `${a}-${b.slice(0, 3)}-${b.slice(3)}`;
    default:
      return `(${a}) ${b}`;
  }
}

/** The same mailbox written differently: a +tag or capitals (normalizeEmail folds both, so the hash matches). */
function emailVariant(email: string, plusTag: boolean): string {
  const [local = '', domain = ''] = email.split('@');
  return plusTag
    ? `${local}+shop@${domain}`
    : `${local.charAt(0).toUpperCase()}${local.slice(1)}@${domain.toUpperCase()}`;
}
