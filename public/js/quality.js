/**
 * @file How good the connection is, from one statistics sample, and why it is
 *     not. Thresholds follow common practice for interactive voice (ITU-T
 *     G.114 for delay: one-way delay above 150 ms is noticed, above 400 ms
 *     round trip a conversation suffers; a few percent of audio loss is
 *     audible; MOS 4.0 and above is "good", below 3.1 most people are
 *     dissatisfied, ITU-T G.107 Annex B).
 */

import {messages} from './messages.js';

/** @typedef {import('./stats.js').Sample} Sample */

/**
 * @typedef {{
 *   level: ('good'|'fair'|'poor'),
 *   reasons: string[],
 * }} Assessment `reasons` are human phrases (e.g. "High packet loss (8%)")
 *     for a `poor` level, worst first
 */

/** [fair from, poor from] per measure. */
const LOSS_PERCENT = [2, 5];
const RTT_MS = [250, 400];
const JITTER_MS = [30, 50];
/** MOS is worse the lower it is: [fair below, poor below]. */
const MOS = [4.0, 3.1];

/**
 * Grades one sample.
 * @param {Sample} s
 * @return {Assessment}
 */
export function assessQuality(s) {
  /** @type {string[]} */
  const poor = [];
  let fair = false;
  if (s.stalled) poor.push(messages.quality('stalled', ''));
  if (s.lossPercent !== null) {
    if (s.lossPercent >= LOSS_PERCENT[1]) {
      poor.push(messages.quality('loss', Math.round(s.lossPercent)));
    } else if (s.lossPercent >= LOSS_PERCENT[0]) {
      fair = true;
    }
  }
  if (s.rttMs !== null) {
    if (s.rttMs >= RTT_MS[1]) {
      poor.push(messages.quality('rtt', Math.round(s.rttMs)));
    } else if (s.rttMs >= RTT_MS[0]) {
      fair = true;
    }
  }
  if (s.jitterMs !== null) {
    if (s.jitterMs >= JITTER_MS[1]) {
      poor.push(messages.quality('jitter', Math.round(s.jitterMs)));
    } else if (s.jitterMs >= JITTER_MS[0]) {
      fair = true;
    }
  }
  if (s.mos !== null) {
    if (s.mos < MOS[1] && poor.length === 0) {
      poor.push(messages.quality('mos', s.mos.toFixed(1)));
    } else if (s.mos < MOS[0]) {
      fair = true;
    }
  }
  if (poor.length) return {level: 'poor', reasons: poor};
  return {level: fair ? 'fair' : 'good', reasons: []};
}
