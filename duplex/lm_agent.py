"""The learned agent: listen encoder -> synchronous speech LM -> codec decoder, once per tick.

Per tick, for a batch of sessions:

1. the listen encoder turns each session's 80 ms of user audio into listen
   features (its streaming state carried per session);
2. the LM reads the tokens it emitted last tick plus those features (middle
   fusion) and gives logits for its text token and its codec tokens;
3. tokens are sampled per session (each session has its own seeded
   generator, so a session's output does not depend on who shares its batch);
4. the codec decoder turns the frame that is complete into 80 ms of audio.

Token timing (the contract with training): the column of tokens sampled at
tick t holds codebook 0 of codec frame t and codebooks 1.. of frame t - d
(d = the acoustic delay), so frame t - d is complete at tick t and is what
the agent returns then, to be heard during tick t+1. Training therefore
targets frame f = the agent's audio of tick f + 1 + d.

Given text (`say`, PROTOCOL.md `agent.say`): the model still decides *when*
text comes (its text head chooses between <pad> and a token), but *which*
token comes is forced from the given text, Moshi-style. The utterance is
done when its tokens are used up and the agent has fallen silent; it is
interrupted when the agent falls silent with tokens left while the user
speaks. `spoken_text` is the text of the tokens emitted before the stop,
less those of the last `text_lead` ticks, which had not been voiced yet.

Late partner slices (latency compensation, SyncLLM): where the partner's
slice of a tick has not arrived in time, the model hears its own prediction
of it (`predict_partner`); when the real slice arrives, it replaces the
prediction in the model's context (`revise_partner`): the session goes back
to its state before that tick and computes that tick and the ones after it
again from what was really said, keeping the tokens it emitted (they have
been sent), before its next step. So the model is never more than the
network's delay behind its partner, and only guesses the slices in flight.
"""

from __future__ import annotations

import codecs
import itertools
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from audio.tts import speak_words
from duplex.agent import Agent, AgentState
from duplex.domains import AGENT_VOICES
from models.agent_checkpoint import AgentModels, load_agent_models
from models.codec import CodecStreamState
from models.listen_encoder import ListenState
from models.lm import KVCache
from models.onnx_export import OnnxCodecDecoder, OnnxListenStep, OnnxLMStep
from models.phonemes import TICK_SECONDS, mnemonic_ids, phoneme_ids, tick_phonemes, voiced_word
from models.text_tokenizer import PAD

SPEECH_RMS = 0.01
"""A decoded slice louder than this (RMS) counts as speech."""
USER_RECENT_TICKS = 6
"""A stop within this many ticks (480 ms) of the user's speech counts as an interruption."""
REPLAY_TICKS = 8
"""How many ticks late (640 ms) a real partner slice may come and still replace the prediction that was
heard in its place; a later one is dropped. Each such tick keeps a copy of the session's listen and LM
state (about 1 MB at the default sizes)."""


@dataclass
class Utterance:
    """Text the agent was asked to say: tokens still to say, and (tick, token) said so far."""

    say_id: str
    pending: deque
    """(token, phoneme ids of the word it starts or None, index of the word it starts or None) still to say."""
    said: list[tuple[int, int]] = field(default_factory=list)
    voiced: bool = False
    """Whether the agent has been heard speaking since the utterance's first token."""
    voicing: Future | None = None
    """The text's `Voicing` as training's voice says it, being rendered off the tick thread; None for
    models without the third phoneme stream."""
    voice_from: int | None = None
    """The position whose codebook-0 target is the first frame of the speech: once the first word is announced."""


@dataclass
class HeardTick:
    """A tick of a session whose partner is predicted, kept while a real slice could still replace what it
    heard then: its state before the tick and the step's inputs, so that the tick can be computed again."""

    tick: int
    listen: ListenState
    cache: list[KVCache]
    column: torch.Tensor
    prev_text: int
    phonemes: torch.Tensor | None
    audio: np.ndarray
    """The partner's slice the tick is computed from: the prediction heard then, or the real one since."""


@dataclass
class LMState(AgentState):
    uid: int = -1
    """Identifies the session to the agent's batch cache (ids of dropped objects can be reused; these cannot)."""
    role: int = 0
    listen: ListenState | None = None
    cache: list[KVCache] = field(default_factory=list)
    decode: CodecStreamState | None = None
    partner_logits: torch.Tensor | None = None
    """(Q, K) the partner heads' last output: the partner's codec frame expected next tick."""
    partner_decode: CodecStreamState | None = None
    """Codec decoder state of the predicted partner stream (latency compensation)."""
    heard_ticks: deque | None = None
    """HeardTick of each of the last REPLAY_TICKS ticks, once the session's partner is predicted."""
    revised_from: int | None = None
    """The first tick whose slice a real one replaced since the last step: computed again before the next."""
    columns: deque = field(default_factory=deque)
    """The last d+1 token columns (acoustic delay d), to assemble the complete frame."""
    prev_text: int = PAD
    prev_phonemes: torch.Tensor | None = None
    """Phonemes of the word whose first token is prev_text (models with phoneme input; None otherwise)."""
    announced: deque = field(default_factory=lambda: deque(maxlen=4))
    """(position, phonemes) of the last words announced: which one is being voiced (models/phonemes.py)."""
    own_word: list[int] = field(default_factory=list)
    """Tokens of the word the model is writing itself (text not given by `say`)..."""
    own_word_tick: int = 0
    """... and the tick of its first token."""
    own_voicings: deque = field(default_factory=lambda: deque(maxlen=4))
    """(position, Future[Voicing]) of the last words the model wrote itself: each one's phonemes as
    training's voice says it, played from `position` (the third phoneme stream)."""
    generator: torch.Generator | None = None
    utterance: Utterance | None = None
    say_queue: deque = field(default_factory=deque)
    silent_ticks: int = 0
    text_decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    """Turns the text stream's bytes into transcript deltas; a character split over tokens comes out whole."""
    user_recent: int = 0
    """Ticks since the user was last heard speaking (from the session's VAD)."""


class SpeechLMAgent(Agent):
    can_say = True

    def __init__(self, models: AgentModels, name: str = "speech-lm", role: int = 0, temperature: float = 0.5,
                 top_k: int = 50, text_lead: int = 2, done_silence_ticks: int = 4, onnx: bool = True,
                 lanes: int | None = None, int8: bool = True):
        """`temperature`: 0.5, because 0.8 (Moshi's) made the small models of session 7 harder to understand
        (bench/bench_lsm_sampling.py; docs/benchmarks.md).

        `lanes`: a tick's sessions are split into this many groups stepped in parallel threads (default:
        torch's thread budget, `torch.set_num_threads` before building the agent). onnxruntime and torch
        release the GIL in their kernels, so on 2 cores two lanes of 8 sessions take less time per tick than
        one batch of 16 (docs/benchmarks.md). The onnxruntime graphs get the whole budget too, for a lone
        session; their idle threads sleep rather than spin, so lanes do not starve each other.

        `int8`: the speech LM's matrix weights in 8 bits (onnxruntime), on by default: its step about twice
        as fast at batch 1 (bench/bench_lm_step.py --int8), and on trained weights its teacher-forced losses
        equal fp32's to three decimals and Whisper hears its speech as well (bench/bench_int8.py,
        bench/bench_lsm_sampling.py --fp32; docs/benchmarks.md). Its activations are quantised per batch, so a
        session's logits move by about 1e-3 with the sessions beside it. `int8=False` gives torch's exact logits."""
        self.m = models
        self.can_predict_partner = models.lm.config.partner_heads
        threads = torch.get_num_threads()
        self.lanes = max(1, lanes or threads)
        # onnxruntime where it was measured faster (docs/benchmarks.md): the speech LM and the codec decoder
        # at any batch, the listen encoder for a single session; eager torch otherwise (and everywhere with
        # onnx=False)
        self._lm_step = OnnxLMStep(models.lm, threads, int8) if onnx else models.lm.step
        self._decode = OnnxCodecDecoder(models.codec, threads) if onnx else models.codec.decode_step
        self._listen_one = OnnxListenStep(models.listen, threads) if onnx else models.listen.step
        self._pool = ThreadPoolExecutor(self.lanes, thread_name_prefix="lm-lane") if self.lanes > 1 else None
        self._renderer = ThreadPoolExecutor(1, thread_name_prefix="say-phonemes")
        """Renders text to say with espeak-ng for its phoneme timing: tens of ms for a sentence, which the
        tick thread must not wait for (libespeak-ng runs without the GIL); needed only once the first word
        is voiced, a few ticks later."""
        self.name = name
        self.role = role
        self.tick_ms = models.lm.config.tick_ms
        self.temperature, self.top_k = temperature, top_k
        self.text_lead = text_lead
        self.done_silence_ticks = done_silence_ticks
        self.delay = models.lm.config.acoustic_delay
        self._batches: list[_Batch | None] = [None] * self.lanes
        """Each lane's last tick: its sessions' streaming states as one batch."""
        self._uids = itertools.count()

    @classmethod
    def from_checkpoint(cls, folder: str, **kwargs) -> SpeechLMAgent:
        return cls(load_agent_models(folder), name=str(folder), **kwargs)

    def new_state(self, seed: int = 0) -> LMState:
        c = self.m.lm.config
        bos = torch.full((c.n_codebooks,), c.audio_bos, dtype=torch.long)
        return LMState(
            seed=seed,
            role=self.role,
            listen=self.m.listen.new_state(1),
            cache=self.m.lm.new_cache(1),
            decode=self.m.codec.new_decode_state(1),
            partner_decode=self.m.codec.new_decode_state(1),
            columns=deque([bos] * (self.delay + 1), maxlen=self.delay + 1),
            generator=torch.Generator().manual_seed(seed),
            uid=next(self._uids),
        )

    def say(self, state: AgentState, text: str, say_id: str) -> None:
        """Queue text to say; word by word, as training gave it (models/phonemes.py for the phonemes)."""
        c = self.m.lm.config
        slots = c.phoneme_slots
        pending = deque()
        for k, word in enumerate(text.split()):
            phonemes = torch.from_numpy(phoneme_ids(word, slots)) if slots else None
            for i, token in enumerate(self.m.tokenizer.encode(word)):
                pending.append((token, phonemes, k) if i == 0 else (token, None, None))
        voicing = self._renderer.submit(_voicing, text, slots) if c.phoneme_streams > 2 and pending else None
        state.say_queue.append(Utterance(say_id, pending, voicing=voicing))

    @torch.no_grad()
    def step(self, states: Sequence[AgentState], listen: np.ndarray) -> np.ndarray:
        self._catch_up(states)
        heard = [self._heard_tick(s, audio) if s.heard_ticks is not None else None for s, audio in zip(states, listen)]
        lanes = np.array_split(np.arange(len(states)), min(self.lanes, len(states)))
        groups = [[states[b] for b in lane] for lane in lanes]
        if self._pool is None or len(lanes) == 1:
            ticks = [self._compute(0, states, listen)]
        else:
            ticks = list(self._pool.map(lambda i: self._compute(i, groups[i], listen[lanes[i]]), range(len(lanes))))
        # Sessions change only from here on, so that a batch that raised above (in any lane) leaves each
        # session as it was for the engine's one-by-one retry (the caches' in-place writes are repeated
        # identically).
        for i, (group, tick) in enumerate(zip(groups, ticks)):
            self._commit(i, group, tick)
            for row, (b, s) in enumerate(zip(lanes[i], group)):
                if (record := heard[b]) is not None:
                    record.phonemes = None if tick.phonemes is None else tick.phonemes[row : row + 1]
                    s.heard_ticks.append(record)
        return np.concatenate([tick.audio for tick in ticks])

    def _heard_tick(self, s: LMState, audio: np.ndarray) -> HeardTick:
        """The session's state before this tick and the tick's inputs, copied (torch steps write in place);
        the phonemes it reads come with the computed tick."""
        return HeardTick(s.tick, _clone_listen(s.listen), [_clone_cache(c) for c in s.cache], s.columns[-1],
                         s.prev_text, None, np.array(audio, np.float32))

    @torch.no_grad()
    def _catch_up(self, states: Sequence[LMState]) -> None:
        """For each session whose heard slices real ones replaced (`revise_partner`): back to its state
        before the first such tick, then that tick and the ones after it computed again, one session at a
        time, with the tokens it emitted then. Its partner prediction comes from the last of them."""
        for s in states:
            if s.revised_from is None:
                continue
            ticks = [r for r in s.heard_ticks if r.tick >= s.revised_from]
            listen, cache = _clone_listen(ticks[0].listen), [_clone_cache(c) for c in ticks[0].cache]
            for r in ticks:
                r.listen, r.cache = _clone_listen(listen), [_clone_cache(c) for c in cache]
                features, listen = self._listen_one(torch.from_numpy(r.audio[None]), listen)
                _, _, partner = self._lm_step(r.column[None], torch.tensor([r.prev_text]), features.reshape(1, -1),
                                              torch.tensor([s.role]), cache, torch.tensor([r.tick]), r.phonemes)
            s.listen, s.cache, s.revised_from = listen, cache, None
            s.partner_logits = None if partner is None else partner[0]
            self._batches = [None] * self.lanes  # the lanes' batched states hold the old rows

    @torch.no_grad()  # here too: grad mode is per thread, and lanes run in the pool's threads
    def _compute(self, lane: int, states: Sequence[LMState], listen: np.ndarray) -> _Tick:
        """One tick of one lane's sessions, leaving the sessions untouched."""
        B = len(states)
        listen_state, cache, decode_state = self._batched_state(lane, states)
        listen_step = self._listen_one if B == 1 else self.m.listen.step
        feats, listen_state = listen_step(torch.from_numpy(listen), listen_state)
        phonemes = self._phonemes(states)
        text_logits, audio_logits, partner_logits = self._lm_step(
            torch.stack([s.columns[-1] for s in states]),
            torch.tensor([s.prev_text for s in states]),
            feats.reshape(B, -1),
            torch.tensor([s.role for s in states]),
            cache,
            torch.tensor([s.tick for s in states]),
            phonemes,
        )
        columns = list(self._sample_audio(audio_logits, [s.generator for s in states]))
        # the frame that is complete now: codebook 0 from d ticks ago, the rest from this tick
        frames = [torch.cat([(s.columns[1] if self.delay else column)[:1], column[1:]])
                  for s, column in zip(states, columns)]
        audio, decode_state = self._decode_complete(torch.stack(frames), decode_state)
        batch = _Batch(tuple(s.uid for s in states), listen_state, cache, decode_state)
        return _Tick(batch, columns, text_logits, partner_logits, audio.numpy().astype(np.float32), phonemes)

    def _commit(self, lane: int, states: Sequence[LMState], tick: _Tick) -> None:
        """Carry a lane's computed tick into its sessions."""
        for b, s in enumerate(states):
            s.partner_logits = None if tick.partner_logits is None else tick.partner_logits[b]
            s.columns.append(tick.columns[b])
            s.prev_text = self._text_token(s, tick.text_logits[b])
            self._transcript(s, s.prev_text)
        self._batches[lane] = tick.batch
        for b, s in enumerate(states):
            s.listen = _row_listen(tick.batch.listen, b)
            s.cache = [layer.row(b) for layer in tick.batch.cache]
            s.decode = _row_decode(tick.batch.decode, b)
            self._after(s, tick.audio[b])
            s.tick += 1

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        self._renderer.shutdown()

    @torch.no_grad()
    def predict_partner(self, states: Sequence[LMState]) -> np.ndarray:
        """Each session's partner slice of the coming tick as the model expects it: the most likely frame
        of its partner heads, through the session's own partner decoder (silence before its first step).
        From the first call on, a session keeps what it needs to replace a prediction it hears by the real
        slice when that arrives (`revise_partner`)."""
        self._catch_up(states)
        for s in states:
            if s.heard_ticks is None:
                s.heard_ticks = deque(maxlen=REPLAY_TICKS)
        unknown = torch.full((self.m.codec.tokens_per_tick,), self.m.codec.config.codebook_size)
        frames = torch.stack([unknown if s.partner_logits is None else s.partner_logits.argmax(-1) for s in states])
        audio, decode = self._decode_complete(frames, _cat_decode([s.partner_decode for s in states]))
        for b, s in enumerate(states):
            s.partner_decode = _row_decode(decode, b)
        return audio.numpy().astype(np.float32)

    def revise_partner(self, state: AgentState, tick: int, audio: np.ndarray) -> None:
        """The real slice of `tick` replaces the prediction heard then: that tick and the ones after it are
        computed again before the session's next step or prediction (`_catch_up`). Dropped if the tick is
        more than REPLAY_TICKS old."""
        for record in state.heard_ticks or ():
            if record.tick == tick:
                record.audio = np.array(audio, np.float32)
                state.revised_from = tick if state.revised_from is None else min(state.revised_from, tick)
                return

    def _decode_complete(self, frames: torch.Tensor, state: CodecStreamState) -> tuple[torch.Tensor, CodecStreamState]:
        """Audio of each row's frame; a row whose frame is not complete yet (codebook 0 still the start
        token, in a session's first `delay` ticks; no prediction yet) gets silence and keeps its decoder state."""
        complete = (frames < self.m.codec.config.codebook_size).all(dim=1)
        audio, new_state = self._decode(frames.where(complete[:, None], 0), state)
        if bool(complete.all()):
            return audio, new_state
        kept = [torch.where(complete.view(-1, *[1] * (n.ndim - 1)), n, o) for n, o in zip(new_state.tensors, state.tensors)]
        return audio * complete[:, None], CodecStreamState(kept)

    def _batched_state(self, lane: int, states: Sequence[LMState]) -> tuple[ListenState, list[KVCache], CodecStreamState]:
        """The sessions' streaming states as one batch: the lane's last batch when the same sessions
        come in the same order (the usual case), else stacked from each session's rows."""
        key = tuple(s.uid for s in states)
        last = self._batches[lane]
        if last is not None and last.key == key:
            return last.listen, last.cache, last.decode
        layers = range(self.m.lm.config.num_hidden_layers)
        return (
            _cat_listen([s.listen for s in states]),
            [KVCache.stack([s.cache[i] for s in states]) for i in layers],
            _cat_decode([s.decode for s in states]),
        )

    def _sample_audio(self, logits: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """One token per codebook and session from (B, Q, K) logits: temperature and top-k, sampled for the
        whole batch at once by inverting each row's distribution at uniform draws from the session's own
        generator, so that a session samples the same whoever shares its batch."""
        logits = logits / max(self.temperature, 1e-5)
        top, index = logits.topk(min(self.top_k, logits.shape[-1]), dim=-1)
        cumulative = torch.softmax(top, dim=-1).cumsum(-1)
        draws = torch.stack([torch.rand(logits.shape[1], generator=g) for g in generators])
        choice = torch.searchsorted(cumulative, draws[..., None]).clamp_(max=top.shape[-1] - 1)
        return index.gather(-1, choice)[..., 0]

    def _phonemes(self, states: Sequence[LMState]) -> torch.Tensor | None:
        """(B, phoneme_width) what each session reads this tick: the phonemes that come with its last text
        token, (second stream) those of the word it is voicing and (third) those of the frame it says now;
        empty slots where none."""
        c = self.m.lm.config
        if not c.phoneme_slots or all(s.prev_phonemes is None and not s.announced and not s.own_voicings
                                      for s in states):
            return None
        rows = torch.zeros(len(states), c.phoneme_width, dtype=torch.long)
        for b, s in enumerate(states):
            if s.prev_phonemes is not None:
                rows[b, : c.phoneme_slots] = s.prev_phonemes
            if c.phoneme_streams > 1 and s.announced:
                k = voiced_word([position for position, _ in s.announced], s.tick, self.text_lead)
                if k is not None:
                    rows[b, c.phoneme_slots : 2 * c.phoneme_slots] = s.announced[k][1]
            u = s.utterance
            if c.phoneme_streams > 2 and u is not None and u.voice_from is not None:
                j, frames = s.tick - u.voice_from, u.voicing.result().frames
                if 0 <= j < len(frames):
                    rows[b, 2 * c.phoneme_slots :] = frames[j]
            for position, voicing in s.own_voicings:
                # rendered since the word was complete, a tick or more ago; waited for if not, so that a
                # seeded session says the same however fast the machine
                if (j := s.tick - position) >= 0 and j < len(frames := voicing.result().frames):
                    rows[b, 2 * c.phoneme_slots :] = frames[j]
        return rows

    def _text_token(self, s: LMState, logits: torch.Tensor) -> int:
        u = s.utterance
        if u is None and s.say_queue and s.user_recent > 2:
            u = s.utterance = s.say_queue.popleft()
        s.prev_phonemes = None
        if u is None:
            token = self._free_text_token(s, logits)
            self._follow_own_text(s, token)
            return token
        if not u.pending:
            return PAD
        comes = self._scheduled(s, u)
        if comes is None:
            comes = self._token_comes(s, logits)
        if not comes:
            return PAD
        forced, s.prev_phonemes, _ = u.pending.popleft()
        if not u.said:  # its first word: read at the next position, voiced text_lead - 1 after that
            u.voice_from = s.tick + self.text_lead
        if s.prev_phonemes is not None:
            s.announced.append((s.tick + 1, s.prev_phonemes))  # read at the next position
        u.said.append((s.tick, forced))
        return forced

    @staticmethod
    def _token_comes(s: LMState, logits: torch.Tensor) -> bool:
        """Whether some text token (not <pad>) comes this tick, drawn with the model's own probability.
        Sampling the token at the temperature would favour <pad>: before a word the model cannot know which
        token comes, so its mass is spread over many and sharpening takes it away (a model of session 9
        never started to speak that way; the dialogue model of session 15 rarely took a turn)."""
        return float(torch.rand(1, generator=s.generator)) < 1.0 - float(torch.softmax(logits, -1)[PAD])

    def _free_text_token(self, s: LMState, logits: torch.Tensor) -> int:
        """The model's own next text token: whether one comes at its own probability (`_token_comes`),
        which one at the temperature, so that when it speaks is the model's timing and what it says is
        sharpened."""
        if not self._token_comes(s, logits):
            return PAD
        words = logits.clone()
        words[PAD] = float("-inf")
        return int(torch.multinomial(torch.softmax(words / max(self.temperature, 1e-5), -1), 1,
                                     generator=s.generator))

    def _follow_own_text(self, s: LMState, token: int) -> None:
        """Give the words the model writes itself their phonemes, as the dialogue stage gives those of the
        side the model says: once a word is complete (the next token starts another word, or is <pad>), the
        second stream voices it from `text_lead` positions after its first token, and the third plays its
        phonemes as training's voice says the word alone, from that position on. Only then is the word
        known, so such words get no first stream (phonemes beside the first token), in training either;
        a word of more than one token is voiced as soon as it is complete, a tick or more late."""
        c = self.m.lm.config
        if not c.phoneme_slots:
            return
        begins_word = token == PAD or self.m.tokenizer.token_bytes(token).startswith(b" ")
        if s.own_word and begins_word:
            word = self.m.tokenizer.decode(s.own_word).strip()
            if word:
                s.announced.append((s.own_word_tick + 1, torch.from_numpy(phoneme_ids(word, c.phoneme_slots))))
                if c.phoneme_streams > 2:
                    voicing = self._renderer.submit(_voicing, word, c.phoneme_slots)
                    s.own_voicings.append((s.own_word_tick + self.text_lead, voicing))
            s.own_word = []
        if token != PAD:
            if not s.own_word:
                s.own_word_tick = s.tick
            s.own_word.append(token)

    def _scheduled(self, s: LMState, u: Utterance) -> bool | None:
        """Whether the next token of the utterance is due by the frame schedule (third phoneme stream),
        placed as training placed the words: a word's first token int(its start tick) after the first
        word's, the rest of its tokens on the ticks after. Where the tokens came when the model chose,
        they could drift off the schedule that the frame stream plays: two timings that training never
        showed disagreeing (docs/speech_lm.md). None where the model decides: its first token (when to
        begin), a model without the schedule, and while the user speaks (whether to go on)."""
        if not u.said or u.voicing is None or s.user_recent <= USER_RECENT_TICKS:
            return None
        word_ticks = u.voicing.result().word_ticks
        if word_ticks is None:
            return None
        word = u.pending[0][2]
        if word is None:
            return True  # the rest of a word's tokens follow its first on consecutive ticks
        return s.tick >= u.said[0][0] + word_ticks[word] - word_ticks[0]

    def _transcript(self, s: LMState, token: int) -> None:
        """agent.transcript.delta for each piece of text the stream adds (PROTOCOL.md)."""
        delta = s.text_decoder.decode(self.m.tokenizer.token_bytes(token))
        if delta:
            s.events.append({"type": "agent.transcript.delta", "text": delta})

    def _after(self, s: LMState, audio: np.ndarray) -> None:
        """Speaking flag, interruption and agent.say bookkeeping after a tick."""
        speaking = float(np.sqrt(np.mean(audio**2))) > SPEECH_RMS
        s.user_recent = 0 if s.user_speaking else s.user_recent + 1
        s.interrupted = s.speaking and not speaking and s.user_recent <= USER_RECENT_TICKS
        s.speaking = speaking
        s.silent_ticks = 0 if speaking else s.silent_ticks + 1
        u = s.utterance
        if u is None or not u.said:
            return
        u.voiced = u.voiced or speaking
        if s.silent_ticks < self.done_silence_ticks:
            return
        # tokens left after the voice stopped while the user spoke: the user cut it short
        interrupted = bool(u.pending) and u.voiced and s.user_recent <= self.done_silence_ticks + USER_RECENT_TICKS
        if u.pending and not interrupted:
            return  # not voiced yet, or a pause inside the utterance: it goes on
        voiced_until = s.tick - self.done_silence_ticks - self.text_lead
        spoken = [tok for t, tok in u.said if t <= voiced_until] if interrupted else [tok for _, tok in u.said]
        s.events.append({"type": "agent.say.done", "id": u.say_id, "interrupted": interrupted,
                         "spoken_text": self.m.tokenizer.decode(spoken).strip()})
        s.utterance = None


@dataclass(frozen=True)
class Voicing:
    """How training's voice says a text: what the third phoneme stream plays and where its words fall."""

    frames: torch.Tensor
    """(ticks, slots) ids of the phonemes sounding in each tick, from the speech's start."""
    word_ticks: list[int] | None
    """The tick each word (of text.split()) starts at; None if espeak-ng's words are not those."""


def _voicing(text: str, slots: int) -> Voicing:
    speech = speak_words(text, AGENT_VOICES[0])
    ticks = tick_phonemes(speech.phonemes)
    frames = torch.from_numpy(np.stack([mnemonic_ids(t, slots) for t in ticks] or [np.zeros(slots, np.int64)]))
    words = [int(w.start / TICK_SECONDS) for w in speech.words] if len(speech.words) == len(text.split()) else None
    return Voicing(frames, words)


@dataclass
class _Batch:
    """Last tick's batched streaming states, and which sessions (in which order) they hold.
    Each session's own state fields are row views of these tensors."""

    key: tuple[int, ...]
    listen: ListenState
    cache: list[KVCache]
    decode: CodecStreamState


@dataclass
class _Tick:
    """A lane's tick as computed, before it is carried into the sessions."""

    batch: _Batch
    columns: list[torch.Tensor]
    text_logits: torch.Tensor
    partner_logits: torch.Tensor | None
    audio: np.ndarray
    phonemes: torch.Tensor | None
    """(B, phoneme_width) what the sessions read with their text (None: none)."""


def _cat_listen(states: list[ListenState]) -> ListenState:
    return ListenState(*(torch.cat(ts) for ts in zip(*(s.tensors() for s in states))))


def _clone_listen(state: ListenState) -> ListenState:
    return ListenState(*(t.clone() for t in state.tensors()))


def _clone_cache(cache: KVCache) -> KVCache:
    return KVCache(cache.k.clone(), cache.v.clone())


def _row_listen(state: ListenState, b: int) -> ListenState:
    return ListenState(*(t[b : b + 1] for t in state.tensors()))


def _row_decode(state: CodecStreamState, b: int) -> CodecStreamState:
    return CodecStreamState([t[b : b + 1] for t in state.tensors])


def _cat_decode(states: list[CodecStreamState]) -> CodecStreamState:
    return CodecStreamState([torch.cat(ts) for ts in zip(*(s.tensors for s in states))])
