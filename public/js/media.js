/**
 * @file Local camera and microphone. Called only after an explicit action of
 *     the user (Start, Test camera and microphone, or choosing a device), never
 *     on page load (SPEC §7.6).
 */

/**
 * What to open, per kind: `false` not at all, `null` any device (the
 * browser's default), a string that `deviceId`.
 * @typedef {{audio: (string|null|false), video: (string|null|false)}}
 *     MediaRequest
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
 * The constraints of one kind.
 * @param {string|null|false} want
 * @param {object} base
 * @return {boolean|MediaTrackConstraints}
 */
function constraint(want, base) {
  if (want === false) return false;
  return want === null ? {...base} : {...base, deviceId: {exact: want}};
}

/**
 * One `getUserMedia` call.
 * @param {MediaRequest} req
 * @return {Promise<MediaResult>} never rejects
 */
async function open(req) {
  try {
    return {
      stream: await navigator.mediaDevices.getUserMedia({
        audio: constraint(req.audio, AUDIO),
        video: constraint(req.video, VIDEO),
      }),
    };
  } catch (err) {
    return {
      error: codeOf(err),
      detail: err instanceof Error ? err.name : 'unknown',
    };
  }
}

/**
 * Opens camera and/or microphone. When both are asked for and no camera is
 * found, falls back to the microphone alone (a voice call is still a call).
 * @param {MediaRequest} [req] default: the default camera and microphone
 * @return {Promise<MediaResult>} never rejects
 */
export async function openLocalMedia(req = {audio: null, video: null}) {
  if (!navigator.mediaDevices?.getUserMedia) {
    return {error: 'insecure', detail: 'navigator.mediaDevices is missing'};
  }
  const res = await open(req);
  if (res.stream || res.error !== 'media-not-found') return res;
  if (req.audio !== false && req.video !== false) {
    return open({audio: req.audio, video: false});
  }
  return res;
}
