/**
 * A kafkajs partition assigner for co-partitioned topics, the way Kafka Streams assigns tasks: partition number p of
 * every subscribed topic goes to the same member, so the instance that owns a customer's transactions also owns its
 * clicks, merges and hand-offs, and can keep that customer's state in process memory.
 *
 * Sticky: each member reports the partition numbers it owns now (in its subscription's user data) and keeps as many of
 * them as its fair share allows, so adding or losing an instance moves only the partitions that must move, and only
 * their state has to be restored.
 */
import { AssignerProtocol, type Assigner, type PartitionAssigner } from 'kafkajs';

export const COPARTITIONED = 'copartitioned-sticky';

/** Partition numbers → member, given members (sorted ids) and what each owned before. Pure, for tests. */
export function assignCopartitioned(
  memberIds: readonly string[],
  partitionCount: number,
  previous: ReadonlyMap<string, readonly number[]> = new Map(),
): Map<string, number[]> {
  const members = [...memberIds].sort();
  const out = new Map<string, number[]>(members.map((m) => [m, []]));
  if (members.length === 0) return out;
  const base = Math.floor(partitionCount / members.length);
  let extra = partitionCount % members.length; // this many members may take base + 1
  const quota = new Map<string, number>();
  const taken = new Set<number>();
  // Members keep what they had, up to a fair share; those that had the most get the +1 shares first.
  const byHeld = [...members].sort((a, b) => (previous.get(b)?.length ?? 0) - (previous.get(a)?.length ?? 0));
  for (const m of byHeld) {
    const q = base + (extra > 0 ? 1 : 0);
    if (extra > 0) extra--;
    quota.set(m, q);
    for (const p of previous.get(m) ?? []) {
      const mine = out.get(m) as number[];
      if (mine.length >= q || taken.has(p) || p < 0 || p >= partitionCount) continue;
      mine.push(p);
      taken.add(p);
    }
  }
  let next = 0;
  for (let p = 0; p < partitionCount; p++) {
    if (taken.has(p)) continue;
    for (let tries = 0; tries < members.length; tries++) {
      const m = members[next % members.length] as string;
      next++;
      const mine = out.get(m) as number[];
      if (mine.length < (quota.get(m) ?? 0)) {
        mine.push(p);
        break;
      }
    }
  }
  for (const list of out.values()) list.sort((a, b) => a - b);
  return out;
}

/**
 * The assigner; `owned` reports this instance's current partition numbers for stickiness. Every subscribed topic must
 * have the same partition count (the topic catalog guarantees it); the assignment fails loudly otherwise, since a
 * mismatch would split a customer's state between owners.
 */
export function copartitionedAssigner(owned: () => readonly number[]): PartitionAssigner {
  return ({ cluster }) => {
    const assigner: Assigner = {
      name: COPARTITIONED,
      version: 1,
      // eslint-disable-next-line @typescript-eslint/require-await -- kafkajs' interface is async
      async assign({ members, topics }) {
        const counts = topics.map((t) => cluster.findTopicPartitionMetadata(t).length);
        const partitionCount = counts[0] ?? 0;
        if (counts.some((c) => c !== partitionCount)) {
          const detail = topics.map((t, i) => `${t}=${counts[i]}`).join(', ');
          throw new Error(`co-partitioned topics must have equal partition counts: ${detail}`);
        }
        const previous = new Map<string, number[]>();
        for (const m of members) {
          const meta = AssignerProtocol.MemberMetadata.decode(m.memberMetadata);
          const held = parseOwned(meta?.userData);
          if (held) previous.set(m.memberId, held);
        }
        const plan = assignCopartitioned(
          members.map((m) => m.memberId),
          partitionCount,
          previous,
        );
        return [...plan].map(([memberId, partitions]) => ({
          memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({
            version: 1,
            assignment: Object.fromEntries(topics.map((t) => [t, partitions])),
            userData: Buffer.alloc(0),
          }),
        }));
      },
      protocol({ topics }) {
        return {
          name: COPARTITIONED,
          metadata: AssignerProtocol.MemberMetadata.encode({
            version: 1,
            topics,
            userData: Buffer.from(JSON.stringify(owned())),
          }),
        };
      },
    };
    return assigner;
  };
}

function parseOwned(data: Buffer | undefined): number[] | null {
  if (!data || data.length === 0) return null;
  try {
    const parsed: unknown = JSON.parse(data.toString('utf8'));
    return Array.isArray(parsed) && parsed.every((p) => Number.isInteger(p)) ? (parsed as number[]) : null;
  } catch {
    return null; // another assigner's user data: no stickiness for that member
  }
}
