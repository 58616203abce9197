// Offers and answers the server may refuse with busy: one over 64 KiB (in
// a large consult) that the server's budget for such messages could not
// take in time. The server drops it unread and says so without ref (see
// docs/protocol.md), so the page keeps each offer and answer it sent until
// the server acknowledges or refuses it by id; a busy refusal concerns the
// oldest one still waiting after a short, jittered backoff (the server
// reads a tab's messages in order, and answers the others in a round
// trip). That one is sent again, unless a newer description superseded
// it meanwhile, up to a few times before the page says the server is busy.

// largeBytes is the size above which the server may refuse with busy.
const largeBytes = 64 * 1024;
// attempts bounds how often a message is sent in all; backoffMs is the
// first wait before sending it again, doubled on each attempt.
const attempts = 4;
const backoffMs = 400;

// waiting maps the id of an offer or answer not acknowledged yet to its
// size, its sender's again (see track) and how often it was sent before.
const waiting = new Map();
// resent is how often the message being sent again was sent before.
let resent = 0;

// track notes the offer or answer sent with id, size characters long.
// again(exhausted) sends it again (through its sender, which calls track
// anew) unless it was superseded, or, once the attempts are exhausted,
// notes it as lost so that its connection renegotiates.
export function track(id, size, again) {
  waiting.set(id, { size, again, tries: resent });
  if (waiting.size > 200) waiting.delete(waiting.keys().next().value);
}

// settled forgets the message with id ref: the server acknowledged or
// refused it (with a ref, so not as busy).
export function settled(ref) {
  if (ref) waiting.delete(ref);
}

// busy handles a busy refusal: after the backoff, the message it concerns
// (see above) is sent again, or report runs once its attempts are spent.
export function busy(report) {
  const delay = (first) => backoffMs * 2 ** (first ? first.tries : 0) * (0.5 + Math.random());
  setTimeout(() => {
    const id = oldest();
    if (id === undefined) return; // every message got its answer meanwhile
    const m = waiting.get(id);
    waiting.delete(id);
    if (m.tries + 1 >= attempts) {
      m.again(true);
      report();
      return;
    }
    resent = m.tries + 1;
    try {
      m.again(false);
    } finally {
      resent = 0;
    }
  }, delay(waiting.get(oldest())));
}

// oldest returns the id of the oldest message still waiting that the
// server may have refused with busy: one over largeBytes if any, else
// any (the server measures the message itself).
function oldest() {
  let first;
  for (const [id, m] of waiting) {
    if (m.size > largeBytes) return id;
    first ??= id;
  }
  return first;
}
