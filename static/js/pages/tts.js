// /tts: speech from /ws/tts played with the Web Audio API frame by frame as it arrives, with a
// byte counter. Each frame is scheduled right after the previous one, so a steady stream plays
// without gaps and a late frame only delays what follows it.
import { openSpeechSocket } from "../readers.js";
import { formatCount, setStatus, submitOnCtrlEnter } from "../ui.js";

const form = document.getElementById("tts-form");
const status = document.getElementById("status");
const bytesOut = document.getElementById("bytes");
const expectedOut = document.getElementById("expected");
const framesOut = document.getElementById("frames");
const secondsOut = document.getElementById("seconds");
const progress = document.getElementById("progress");
const speakButton = document.getElementById("speak");
const stopButton = document.getElementById("stop");
const sampleRate = Number(form.dataset.sampleRate);
const bytesPerChar = Number(form.dataset.bytesPerChar);
const FRAME_BYTES = (sampleRate / 50) * 2; // 20 ms frames, for the waveform's width
const LEAD_SECONDS = 0.05; // scheduling slack, so the first frame is not already late

let current = null;
let lastPlayer = null; // still playing the end of the last speech

// One bar per frame, its height the frame's loudness (RMS): the shape of the speech so far.
class Waveform {
  constructor(canvas) {
    this.canvas = canvas;
    this.peaks = [];
    this.colour = getComputedStyle(canvas).color;
  }

  reset(frames) {
    this.peaks = [];
    this.slots = Math.max(frames, 1);
    this.canvas.width = this.canvas.clientWidth * devicePixelRatio;
    this.canvas.height = this.canvas.clientHeight * devicePixelRatio;
    this.draw();
  }

  add(view) {
    let sum = 0;
    for (let i = 0; i < view.byteLength; i += 2) sum += view.getInt16(i, true) ** 2;
    this.peaks.push(Math.sqrt(sum / (view.byteLength / 2)) / 32768);
    this.draw();
  }

  draw() {
    const { width, height } = this.canvas;
    const context = this.canvas.getContext("2d");
    context.clearRect(0, 0, width, height);
    context.fillStyle = this.colour;
    const step = width / Math.max(this.slots, this.peaks.length);
    this.peaks.forEach((peak, i) => {
      const bar = Math.min(height, Math.max(1, peak * height * 3)); // tones reach 0.3 of full scale
      context.fillRect(i * step, (height - bar) / 2, Math.max(1, step - 1), bar);
    });
  }
}

const waveform = new Waveform(document.getElementById("waveform"));

// Plays 16-bit little-endian mono PCM frames back to back.
class PcmPlayer {
  constructor() {
    this.context = new AudioContext();
    this.playAt = 0;
  }

  play(buffer) {
    const view = new DataView(buffer);
    const samples = buffer.byteLength / 2;
    const audio = this.context.createBuffer(1, samples, sampleRate);
    const channel = audio.getChannelData(0);
    for (let i = 0; i < samples; i++) channel[i] = view.getInt16(2 * i, true) / 32768;
    const source = this.context.createBufferSource();
    source.buffer = audio;
    source.connect(this.context.destination);
    this.playAt = Math.max(this.playAt, this.context.currentTime + LEAD_SECONDS);
    source.start(this.playAt);
    this.playAt += audio.duration;
  }

  close() {
    this.context.close().catch(() => {});
  }
}

function running(on) {
  speakButton.disabled = on;
  stopButton.disabled = !on;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (current) return;
  const text = form.elements.text.value;
  const expected = [...text].length * bytesPerChar; // characters, not UTF-16 units
  lastPlayer?.close(); // browsers allow only a few audio contexts at once
  const player = form.elements.play.checked ? new PcmPlayer() : null;
  lastPlayer = player;
  let received = 0;
  let frames = 0;
  expectedOut.textContent = formatCount(expected);
  bytesOut.textContent = "0";
  framesOut.textContent = "0";
  progress.max = expected || 1;
  progress.value = 0;
  waveform.reset(expected / FRAME_BYTES);
  setStatus(status, "busy", "connecting");
  running(true);
  const settle = (state, message, keepPlaying) => {
    setStatus(status, state, message);
    if (!keepPlaying) player?.close();
    current = null;
    running(false);
  };
  current = openSpeechSocket(form.dataset.wsUrl, { text, realtime: form.elements.realtime.checked }, {
    audio(buffer) {
      if (frames === 0) setStatus(status, "busy", player ? "playing" : "receiving");
      received += buffer.byteLength;
      frames += 1;
      bytesOut.textContent = formatCount(received);
      framesOut.textContent = formatCount(frames);
      secondsOut.textContent = `${(received / 2 / sampleRate).toFixed(2)} s`;
      progress.value = received;
      player?.play(buffer);
      waveform.add(new DataView(buffer));
    },
    end({ finish_reason, bytes }) {
      settle("done", `done: ${finish_reason}, ${formatCount(bytes)} bytes`, finish_reason === "stop");
    },
    error(message) { settle("error", `error: ${message}`, false); },
  });
});

stopButton.addEventListener("click", () => current?.stop());

submitOnCtrlEnter(form);
