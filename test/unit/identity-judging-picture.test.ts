import { describe, expect, it } from 'vitest';
import type { CandidateClusterRecords } from '../../processors/identity/graph-store.js';
import { JudgingPicture } from '../../processors/identity/judging-picture.js';
import type { IdentityRecord } from '../../processors/identity/types.js';

const record = (key: string): IdentityRecord => ({ key }) as IdentityRecord;
const cluster = (id: string, keys: string[], size = keys.length): CandidateClusterRecords => ({
  id,
  size,
  members: keys.map(record),
  version: '1',
});
const shape = (c: CandidateClusterRecords | undefined) => c && [c.id, c.size, c.members.map((m) => m.key)];

describe('JudgingPicture', () => {
  it('plays unions as the graph does: the older cluster survives, whatever joins whom', () => {
    const picture = new JudgingPicture(100, 60);
    const c2 = cluster('c-2', ['s:b']);
    const c9 = cluster('c-9', ['s:a']);
    const c10 = cluster('c-10', ['s:c', 's:d']);
    // s:a (c-9) joins c-10 and c-2, oldest first: c-9 goes into c-2, then c-10 does too.
    expect(picture.unite(c9, [c10, c2])).toBe('c-2');
    expect(picture.rootOf('c-9')).toBe('c-2');
    expect(picture.rootOf('c-10')).toBe('c-2');
    // Seen by a later identity, in the search's order, each root once, members merged in key order.
    const later = picture.view('c-11', [cluster('c-11', ['s:e']), c10, c9, c2]);
    expect(shape(later?.own)).toEqual(['c-11', 1, ['s:e']]);
    expect(later?.others.map(shape)).toEqual([['c-2', 4, ['s:a', 's:b', 's:c', 's:d']]]);
    // Sequence numbers compare as numbers, not text: c-10 is younger than c-9.
    const other = new JudgingPicture(100, 60);
    expect(other.unite(c10, [c9])).toBe('c-9');
  });

  it('refuses a union over the cluster cap, as growCluster does, and goes on with the next', () => {
    const picture = new JudgingPicture(4, 60);
    const own = cluster('c-5', ['s:a', 's:b']);
    const big = cluster('c-1', ['s:c', 's:d', 's:e']);
    const small = cluster('c-3', ['s:f']);
    expect(picture.unite(own, [big, small])).toBe('c-3');
    expect(picture.rootOf('c-1')).toBe('c-1');
    expect(shape(picture.view('c-5', [own, big, small])?.own)).toEqual(['c-3', 3, ['s:a', 's:b', 's:f']]);
  });

  it("an identity's own cluster merged away by an earlier union is the survivor for it", () => {
    const picture = new JudgingPicture(100, 60);
    const mine = cluster('c-7', ['s:x']);
    const theirs = cluster('c-4', ['s:y']);
    picture.unite(theirs, [mine]);
    const view = picture.view('c-7', [mine, theirs, cluster('c-8', ['s:z'])]);
    expect(shape(view?.own)).toEqual(['c-4', 2, ['s:x', 's:y']]);
    expect(view?.others.map(shape)).toEqual([['c-8', 1, ['s:z']]]);
  });

  it('orders member keys by code point, as the graph sorts them', () => {
    const picture = new JudgingPicture(100, 60);
    // U+FF21 (fullwidth A) sorts before U+1F600 (a surrogate pair in UTF-16), unlike UTF-16 code-unit order.
    const a = cluster('c-1', ['s:\u{1F600}']);
    const b = cluster('c-2', ['s:\uFF21', 's:b']);
    picture.unite(a, [b]);
    expect(picture.view('c-1', [a])?.own?.members.map((m) => m.key)).toEqual(['s:b', 's:\uFF21', 's:\u{1F600}']);
  });

  it('has no picture for a grown cluster the graph would answer with only some of its members', () => {
    const picture = new JudgingPicture(100, 3);
    const a = cluster('c-1', ['s:a', 's:b']);
    const b = cluster('c-2', ['s:c', 's:d']);
    const c = cluster('c-3', ['s:e']);
    expect(picture.view('c-3', [c, a])).not.toBeNull();
    picture.unite(a, [b]);
    expect(picture.view('c-3', [c, a])).toBeNull();
    expect(picture.view('c-3', [c])).not.toBeNull(); // a picture without it is still whole
    // A snapshot cluster with fewer members than its size is as the graph answered it.
    expect(picture.view('c-9', [cluster('c-9', ['s:f'], 70)])).not.toBeNull();
  });

  it('settles to what the graph holds: grown clusters at the version their last union answered, retired ids, roots', () => {
    const picture = new JudgingPicture(100, 60);
    const a = cluster('c-1', ['s:a']);
    const b = cluster('c-2', ['s:b']);
    const c = cluster('c-3', ['s:c']);
    const d = cluster('c-4', ['s:d']);
    picture.unite(b, [a]); // s:b: c-2 into c-1
    picture.unite(c, [d]); // s:c: c-4 into c-3
    const view = picture.view('c-4', [d, c, a]); // s:d, now in c-3 with s:c, joins c-1: c-3 into c-1
    if (!view?.own) throw new Error('no picture');
    picture.unite(view.own, view.others);
    const settled = picture.settle([
      { key: 's:b', result: { globalId: 'c-1', version: '3' } },
      { key: 's:c', result: { globalId: 'c-3', version: '4' } },
      { key: 's:d', result: { globalId: 'c-1', version: '5' } },
      { key: 's:x', result: undefined },
    ]);
    expect(settled.clusters.map((x) => [x.id, x.size, x.version, x.members.map((m) => m.key)])).toEqual([
      ['c-1', 4, '5', ['s:a', 's:b', 's:c', 's:d']],
    ]);
    expect([...settled.retired].sort()).toEqual([
      ['c-2', 'c-1'],
      ['c-3', 'c-1'],
      ['c-4', 'c-1'],
    ]);
    expect(Object.fromEntries(settled.roots)).toEqual({ 's:a': 'c-1', 's:b': 'c-1', 's:c': 'c-1', 's:d': 'c-1' });
  });
});
