/**
 * @file The device pickers (camera, microphone, speaker). Filled from
 *     `enumerateDevices()` only once the page holds a stream (so the browser
 *     has been asked, by an action of the user, and gives labels); `<option>`s
 *     are built with `textContent`, never markup. The speaker picker exists
 *     only where `HTMLMediaElement.prototype.setSinkId` does.
 */

import {messages} from './messages.js';

/** Whether this browser can choose the speaker of a media element. */
const CAN_CHOOSE_SPEAKER =
  typeof HTMLMediaElement !== 'undefined' &&
  'setSinkId' in HTMLMediaElement.prototype;

/**
 * @typedef {{
 *   camera: HTMLSelectElement,
 *   mic: HTMLSelectElement,
 *   speaker: HTMLSelectElement,
 *   speakerField: HTMLElement,
 * }} PickerElements
 */

/** The three device pickers. */
export class DevicePickers {
  /** @param {PickerElements} els */
  constructor(els) {
    this.els = els;
    this.canChooseSpeaker = CAN_CHOOSE_SPEAKER;
    /** @type {string} the chosen speaker (`''` is the system default) */
    this.speakerId = '';
    this.listening = false;
  }

  /**
   * Refills the pickers and selects the devices `stream` uses.
   * @param {MediaStream|null} stream
   * @return {Promise<void>}
   */
  async refresh(stream) {
    if (!stream || !navigator.mediaDevices?.enumerateDevices) return;
    /** @type {MediaDeviceInfo[]} */
    let list;
    try {
      list = await navigator.mediaDevices.enumerateDevices();
    } catch {
      return;
    }
    const videoId = stream.getVideoTracks()[0]?.getSettings().deviceId ?? '';
    const audioId = stream.getAudioTracks()[0]?.getSettings().deviceId ?? '';
    fill(
        this.els.camera,
        list.filter((d) => d.kind === 'videoinput'),
        videoId,
        'camera-n',
        'no-camera',
    );
    fill(
        this.els.mic,
        list.filter((d) => d.kind === 'audioinput'),
        audioId,
        'microphone-n',
        'no-microphone',
    );
    const outputs = list.filter((d) => d.kind === 'audiooutput');
    this.els.speakerField.hidden = !this.canChooseSpeaker || !outputs.length;
    if (this.canChooseSpeaker && outputs.length) {
      fill(this.els.speaker, outputs, this.speakerId || 'default', 'speaker-n');
    }
  }

  /**
   * Refreshes on `devicechange` (a headset plugged in) from now on.
   * @param {function(): (MediaStream|null)} currentStream
   */
  listen(currentStream) {
    if (this.listening || !navigator.mediaDevices) return;
    this.listening = true;
    navigator.mediaDevices.addEventListener('devicechange', () => {
      void this.refresh(currentStream());
    });
  }

  /**
   * The label of a device in a picker (for "Switched to …").
   * @param {HTMLSelectElement} select
   * @return {string}
   */
  static chosenLabel(select) {
    return select.selectedOptions[0]?.textContent ?? '';
  }
}

/**
 * Rebuilds the options of one picker.
 * @param {HTMLSelectElement} select
 * @param {MediaDeviceInfo[]} devices
 * @param {string} currentId the device in use
 * @param {string} nameKey message for a device without a label
 * @param {string} [noneKey] message when there is none (disables the picker)
 */
function fill(select, devices, currentId, nameKey, noneKey) {
  const options = devices.map((d, i) => {
    const opt = document.createElement('option');
    opt.value = d.deviceId;
    opt.textContent = d.label || messages.status(nameKey, {n: i + 1});
    return opt;
  });
  if (!options.length && noneKey) {
    const opt = document.createElement('option');
    opt.value = '';
    opt.textContent = messages.status(noneKey);
    options.push(opt);
  }
  select.replaceChildren(...options);
  select.dataset.empty = String(devices.length === 0);
  select.disabled = devices.length === 0;
  const current = devices.find((d) => d.deviceId === currentId);
  if (current) select.value = current.deviceId;
}
