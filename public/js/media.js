/**
 * @file Local camera and microphone. Called only after an explicit action of
 *     the user (Start, or Test camera and microphone), never on page load (SPEC
 *     §7.6).
 */

/**
 * @typedef {{stream: MediaStream, error?: undefined} | {stream?: undefined,
 *     error: string, detail: string}} MediaResult `error` is one of `insecure`,
 *     `media-denied`, `media-not-found`, `media-busy`, `media-error`.
 */

const AUDIO = {
  echoCancellation: true,
  noiseSuppression: true,
  autoGainControl: true,
};
const VIDEO = {
  width: {ideal: 1280},
  height: {ideal: 720},
  frameRate: {ideal: 30},
};

/**
 * Maps a `getUserMedia` rejection to an error code of the page.
 * @param {unknown} err
 * @return {string}
 */
function codeOf(err) {
  const name = err instanceof Error ? err.name : '';
  switch (name) {
    case 'NotAllowedError':
    case 'SecurityError':
    case 'PermissionDeniedError':
      return 'media-denied';
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
      return 'media-not-found';
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return 'media-busy';
    default:
      return 'media-error';
  }
}

/**
 * Opens camera and microphone; falls back to the microphone alone when there is
 * no camera.
 * @return {Promise<MediaResult>} never rejects
 */
export async function openLocalMedia() {
  if (!navigator.mediaDevices?.getUserMedia) {
    return {error: 'insecure', detail: 'navigator.mediaDevices is missing'};
  }
  try {
    return {
      stream: await navigator.mediaDevices.getUserMedia({
        audio: AUDIO,
        video: VIDEO,
      }),
    };
  } catch (err) {
    const code = codeOf(err);
    if (code !== 'media-not-found') {
      return {error: code, detail: err instanceof Error ? err.name : 'unknown'};
    }
  }
  // No camera (or none matching): a voice call is still a call.
  try {
    return {stream: await navigator.mediaDevices.getUserMedia({audio: AUDIO})};
  } catch (err) {
    return {
      error: codeOf(err),
      detail: err instanceof Error ? err.name : 'unknown',
    };
  }
}
