"""A learned agent at the default sizes with random weights, for the speed benches.

What a tick costs does not depend on what the weights hold, so the benches
of the learned agent's speed need no trained checkpoint: this writes a
complete agent folder (listen encoder, speech LM, codec, tokenizer) at the
sizes the recipe trains.
"""

from __future__ import annotations

from models.agent_checkpoint import AgentModels, save_agent
from models.codec import Codec, CodecConfig
from models.listen_encoder import ListenEncoder
from models.lm import SyncLM, SyncLMConfig
from models.text_tokenizer import TextTokenizer
from training.speech_lm_stage import fitted_lm_config, tokenizer_corpus


def save_random_agent(folder: str, decoder: str = "vocos") -> None:
    """An agent folder at `folder` with the default sizes and the given codec decoder ("vocos" or "seanet")."""
    codec, listen = Codec(CodecConfig(decoder=decoder)).eval(), ListenEncoder().eval()
    tokenizer = TextTokenizer.train(tokenizer_corpus(0), 1024)
    lm = SyncLM(fitted_lm_config(SyncLMConfig(), codec, listen, tokenizer)).eval()
    save_agent(AgentModels(lm, codec, listen, tokenizer), folder)
