/**
 * The sentiment of one review, computed in one place for every path that needs it: the identity resolver stamps it on
 * the resolved click (`reviewSentiment`), the warehouse sink stores it in `fact_event.review_sentiment`, and the
 * backfill recomputes stored values. The stream and the point-in-time SQL then aggregate the same integers.
 *
 * The score is the `sentiment` library's AFINN-165 `comparative` (sum of the word valences, −5…+5 each, with its
 * negation rule, divided by the number of tokens), in thousandths, rounded to an integer: sums of integers are exact
 * in both executions, where float sums would depend on the order of addition. English only.
 */
import Sentiment from 'sentiment';

/**
 * What produced the stored scores: the library, its version and the word list. Change it together with the pinned
 * `sentiment` version (a different list scores differently); `npm run features -- backfill` then recomputes the
 * warehouse's stored scores.
 */
export const SENTIMENT_METHOD = 'sentiment@5.0.2 AFINN-165 comparative x1000';

/** The bounds of a score: AFINN valences are −5…+5, so the per-token mean is too. */
export const SENTIMENT_MILLI_MAX = 5_000;

const analyzer = new Sentiment();

/** A review's sentiment per word in thousandths, an integer in [−5000, 5000]; 0 for text without any scored word. */
export function reviewSentimentMilli(text: string): number {
  const { comparative } = analyzer.analyze(text);
  if (!Number.isFinite(comparative)) return 0;
  const milli = Math.round(comparative * 1000) + 0; // + 0: no negative zero in sums or JSON
  return Math.max(-SENTIMENT_MILLI_MAX, Math.min(SENTIMENT_MILLI_MAX, milli));
}

/**
 * The review's score for an event that carries `reviewText`, null without one. A review is a non-empty text (the
 * warehouse's `review_text != ''`): the resolver, the sink and the feature state all decide it here.
 */
export function reviewSentimentOf(reviewText: string | null | undefined): number | null {
  return reviewText ? reviewSentimentMilli(reviewText) : null;
}

/**
 * The event as the identity resolver republishes it: a click's `reviewSentiment` set from its own `reviewText` (null
 * without a review), whatever the platform sent there. Other events, and clicks already right, are returned as they
 * are (no copy: most events carry no review).
 */
export function withReviewSentiment<T extends object>(event: T): T {
  if (!('reviewText' in event)) return event;
  const click = event as { readonly reviewText: string | null; readonly reviewSentiment?: number | null };
  const score = reviewSentimentOf(click.reviewText);
  return score === (click.reviewSentiment ?? null) ? event : { ...event, reviewSentiment: score };
}
