/**
 * @file Keeping the videos playing where the browser is strict about it
 *     (Safari and iOS above all; docs/browsers.md).
 *
 * - Autoplay refused: a `<video>` with sound may be refused `play()`
 *   (`NotAllowedError`) when no user gesture is recent enough. Safari allows
 *   it while the page captures the camera or microphone, but not always (a
 *   call that starts long after the tap on Start, Low Power Mode, a page that
 *   came back from the background). Then a "Tap to play" button covers the
 *   other person's video; a tap plays it.
 * - Back from the background: iOS pauses the videos of a page that was hidden
 *   (another app, the lock screen) and may end its camera and microphone
 *   tracks. On `visibilitychange` to visible and on `pageshow` from the
 *   back-forward cache, paused videos are played again and an ended local
 *   track is reopened from the same device (`reopen`, which replaces it in the
 *   call without renegotiation).
 */

/**
 * Plays `video`; if the browser refuses without a user gesture, shows a
 * button over it that plays it on a tap.
 * @param {HTMLVideoElement} video
 */
export function playOrOfferTap(video) {
  video.play().then(
      () => hideTap(video),
      (err) => {
        // AbortError: the stream was replaced or removed before playing.
        if (err?.name === 'AbortError') return;
        console.info('[alisay] autoplay refused', err?.name);
        if (err?.name === 'NotAllowedError') showTap(video);
      },
  );
}

/**
 * The button that plays a refused video (made once per video).
 * @param {HTMLVideoElement} video
 * @return {HTMLButtonElement}
 */
function tapButton(video) {
  const id = `${video.id}-tap`;
  let button = /** @type {HTMLButtonElement|null} */ (
    document.getElementById(id)
  );
  if (button) return button;
  button = document.createElement('button');
  button.type = 'button';
  button.id = id;
  button.className = 'tap-to-play';
  button.textContent = 'Tap to play the other person';
  button.hidden = true;
  button.addEventListener('click', () => {
    video.play().then(
        () => hideTap(video),
        (err) => console.info('[alisay] play refused', err?.name),
    );
  });
  video.after(button);
  return button;
}

/** @param {HTMLVideoElement} video */
function showTap(video) {
  if (video.srcObject) tapButton(video).hidden = false;
}

/** @param {HTMLVideoElement} video */
function hideTap(video) {
  const button = document.getElementById(`${video.id}-tap`);
  if (button) button.hidden = true;
}

/**
 * Plays the videos again, and reopens ended local tracks, whenever the page
 * comes back to the foreground.
 * @param {HTMLVideoElement[]} videos
 * @param {function(): (MediaStream|null)} localStream the current local stream
 * @param {function('audio'|'video', string): Promise<void>} reopen opens the
 *     device again and replaces the ended track
 */
export function resumeInForeground(videos, localStream, reopen) {
  const resume = () => {
    if (document.visibilityState !== 'visible') return;
    for (const video of videos) {
      if (video.srcObject && video.paused) playOrOfferTap(video);
    }
    for (const track of localStream()?.getTracks() ?? []) {
      const deviceId = track.getSettings().deviceId;
      if (track.readyState === 'ended' && deviceId) {
        console.info('[alisay] back in the foreground: reopening', track.kind);
        void reopen(/** @type {'audio'|'video'} */ (track.kind), deviceId);
      }
    }
  };
  document.addEventListener('visibilitychange', resume);
  window.addEventListener('pageshow', (e) => {
    if (e.persisted) resume();
  });
}
