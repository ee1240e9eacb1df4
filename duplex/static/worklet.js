// Audio threads of the page: microphone capture and agent playback, as AudioWorklet processors.
//
// Both convert between the AudioContext's rate and the rate on the wire with
// a streaming windowed-sinc resampler (a no-op when the rates match, which is
// the usual case: the page asks the server for the context's own rate when
// the protocol accepts it).

class StreamingResampler {
  // Carries enough input history between calls that a stream resampled chunk by
  // chunk is one continuous signal. Positions are in input samples.
  constructor(fromRate, toRate, zeroCrossings = 12) {
    this.step = fromRate / toRate;
    this.cutoff = Math.min(1, toRate / fromRate) * 0.92;
    this.half = Math.ceil(zeroCrossings / this.cutoff);
    this.identity = fromRate === toRate;
    this.buffer = new Float32Array(this.half);
    this.position = this.half; // next output's centre, relative to buffer[0]
  }

  process(input) {
    if (this.identity) return input;
    const buffer = new Float32Array(this.buffer.length + input.length);
    buffer.set(this.buffer);
    buffer.set(input, this.buffer.length);
    const out = [];
    while (this.position + this.half < buffer.length) {
      const centre = Math.floor(this.position);
      let sum = 0;
      let norm = 0;
      for (let k = centre - this.half + 1; k <= centre + this.half; k++) {
        const x = this.position - k;
        const arg = Math.PI * x * this.cutoff;
        const sinc = arg === 0 ? 1 : Math.sin(arg) / arg;
        const window = 0.5 + 0.5 * Math.cos((Math.PI * x) / (this.half + 1));
        const w = sinc * window;
        sum += buffer[k] * w;
        norm += w;
      }
      out.push(sum / norm);
      this.position += this.step;
    }
    const keep = Math.max(0, Math.floor(this.position) - this.half);
    this.buffer = buffer.slice(keep);
    this.position -= keep;
    return Float32Array.from(out);
  }
}

function rmsDb(samples) {
  if (!samples.length) return -100;
  let sum = 0;
  for (const s of samples) sum += s * s;
  const rms = Math.sqrt(sum / samples.length);
  return rms > 1e-5 ? 20 * Math.log10(rms) : -100;
}

// Microphone -> 16-bit PCM chunks of chunkMs at the wire rate, posted to the page.
class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { wireRate, chunkMs } = options.processorOptions;
    this.resampler = new StreamingResampler(sampleRate, wireRate);
    this.chunk = Math.round((wireRate * chunkMs) / 1000);
    this.pending = new Float32Array(0);
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    const converted = this.resampler.process(channel);
    const pending = new Float32Array(this.pending.length + converted.length);
    pending.set(this.pending);
    pending.set(converted, this.pending.length);
    let offset = 0;
    while (pending.length - offset >= this.chunk) {
      const slice = pending.subarray(offset, offset + this.chunk);
      const pcm = new Int16Array(this.chunk);
      for (let i = 0; i < this.chunk; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(slice[i] * 32767)));
      this.port.postMessage({ pcm: pcm.buffer, level: rmsDb(slice) }, [pcm.buffer]);
      offset += this.chunk;
    }
    this.pending = pending.slice(offset);
    return true;
  }
}

// Agent frames (16-bit PCM at the wire rate) -> speaker, through a small jitter buffer:
// playback starts once primeMs is queued, and after running dry it waits to be primed again.
class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { wireRate, primeMs, maxMs } = options.processorOptions;
    this.resampler = new StreamingResampler(wireRate, sampleRate);
    this.prime = Math.round((sampleRate * primeMs) / 1000);
    this.max = Math.round((sampleRate * maxMs) / 1000);
    this.queue = [];
    this.head = 0; // read position in queue[0]
    this.queued = 0;
    this.playing = false;
    this.played = 0;
    this.dry = 0;
    this.dropped = 0;
    this.levelSum = 0;
    this.levelCount = 0;
    this.sinceReport = 0;
    this.port.onmessage = (e) => this.enqueue(new Int16Array(e.data));
  }

  enqueue(pcm) {
    const audio = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) audio[i] = pcm[i] / 32768;
    const converted = this.resampler.process(audio);
    this.queue.push(converted);
    this.queued += converted.length;
    // The sound card's clock and the server's drift apart; never let the lag grow without bound.
    while (this.queued > this.max && this.queue.length > 1) {
      const first = this.queue.shift();
      this.queued -= first.length - this.head;
      this.dropped += first.length - this.head;
      this.head = 0;
    }
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    if (!this.playing && this.queued >= this.prime) this.playing = true;
    let written = 0;
    if (this.playing) {
      while (written < out.length && this.queue.length) {
        const first = this.queue[0];
        const n = Math.min(out.length - written, first.length - this.head);
        out.set(first.subarray(this.head, this.head + n), written);
        written += n;
        this.head += n;
        if (this.head >= first.length) {
          this.queue.shift();
          this.head = 0;
        }
      }
      this.queued -= written;
      this.played += written;
      if (written < out.length) {
        this.playing = false;
        this.dry += 1;
      }
    }
    for (let i = 0; i < written; i++) this.levelSum += out[i] * out[i];
    this.levelCount += out.length;
    this.sinceReport += out.length;
    if (this.sinceReport >= sampleRate / 20) {
      const rms = Math.sqrt(this.levelSum / this.levelCount);
      this.port.postMessage({
        playedMs: (this.played * 1000) / sampleRate,
        bufferedMs: (this.queued * 1000) / sampleRate,
        level: rms > 1e-5 ? 20 * Math.log10(rms) : -100,
        dry: this.dry,
        droppedMs: (this.dropped * 1000) / sampleRate,
      });
      this.levelSum = 0;
      this.levelCount = 0;
      this.sinceReport = 0;
    }
    return true;
  }
}

registerProcessor("duplex-capture", CaptureProcessor);
registerProcessor("duplex-playback", PlaybackProcessor);
