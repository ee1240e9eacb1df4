"""Chunk-by-chunk execution of the `encodec` package's causal SEANet networks.

The encodec modules only run on whole signals. `streaming(module)` wraps an
encoder or decoder (built with causal=True and zero padding) in a parallel
tree of small modules that run one chunk at a time and carry, explicitly, what
each layer needs from the past:

- a causal convolution keeps its last (kernel-1)*dilation-(stride-1) inputs,
- a transposed convolution keeps the overlapping tail of its output,
- an LSTM keeps its hidden and cell state.

The state is a flat list of tensors, batch first, so that it can be created,
reset per session and fed through ONNX as plain inputs and outputs. Chunks
must hold a whole number of the network's hop; then the streamed output equals
the offline output exactly (up to float rounding).
"""

from __future__ import annotations

import torch
from encodec.modules import SLSTM, SConv1d, SConvTranspose1d
from encodec.modules.seanet import SEANetResnetBlock
from torch import nn

State = list[torch.Tensor]


class StreamingPart(nn.Module):
    """A layer run chunk by chunk: forward(x, state) -> (y, new_state)."""

    def state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        return []

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        raise NotImplementedError


class Stateless(StreamingPart):
    """An element-wise layer (activation): nothing to remember."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        return self.layer(x), []


class CausalConv(StreamingPart):
    """SConv1d: prepends the inputs it kept from the previous chunk instead of zero padding."""

    def __init__(self, conv: SConv1d):
        super().__init__()
        if not conv.causal or conv.pad_mode != "constant":
            raise ValueError("streaming needs causal convolutions with zero ('constant') padding")
        self.conv = conv.conv
        inner = conv.conv.conv
        self.history = (inner.kernel_size[0] - 1) * inner.dilation[0] - (inner.stride[0] - 1)
        self.channels = inner.in_channels

    def state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        return [(batch, self.channels, self.history)] if self.history > 0 else []

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        if self.history == 0:
            return self.conv(x), []
        padded = torch.cat([state[0], x], dim=-1)
        return self.conv(padded), [padded[..., padded.shape[-1] - self.history :]]


class CausalConvTranspose(StreamingPart):
    """SConvTranspose1d: adds the tail that the previous chunk's output overlapped into this one."""

    def __init__(self, convtr: SConvTranspose1d):
        super().__init__()
        if not convtr.causal or convtr.trim_right_ratio != 1.0:
            raise ValueError("streaming needs causal transposed convolutions trimmed on the right")
        self.convtr = convtr.convtr
        inner = convtr.convtr.convtr
        self.stride = inner.stride[0]
        self.tail = inner.kernel_size[0] - self.stride
        self.channels = inner.out_channels
        self.bias = inner.bias

    def state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        return [(batch, self.channels, self.tail)] if self.tail > 0 else []

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        y = self.convtr(x)
        if self.tail == 0:
            return y, []
        n = x.shape[-1] * self.stride
        head = y[..., : self.tail] + state[0]
        y = torch.cat([head, y[..., self.tail :]], dim=-1)
        tail = y[..., n:]
        if self.bias is not None:  # the next chunk adds its own bias to these samples
            tail = tail - self.bias[:, None]
        return y[..., :n], [tail]


class StatefulLSTM(StreamingPart):
    """SLSTM with its (h, c) carried; stored batch first as (B, layers, dim)."""

    def __init__(self, slstm: SLSTM):
        super().__init__()
        self.lstm = slstm.lstm
        self.skip = slstm.skip

    def state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        shape = (batch, self.lstm.num_layers, self.lstm.hidden_size)
        return [shape, shape]

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        seq = x.permute(2, 0, 1)
        h, c = (s.transpose(0, 1).contiguous() for s in state)
        y, (h, c) = self.lstm(seq, (h, c))
        if self.skip:
            y = y + seq
        return y.permute(1, 2, 0), [h.transpose(0, 1), c.transpose(0, 1)]


class Sequence(StreamingPart):
    """Layers in order; the state is the concatenation of theirs."""

    def __init__(self, parts: list[StreamingPart]):
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        return [shape for part in self.parts for shape in part.state_shapes(batch)]

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        new_state: State = []
        offset = 0
        for part in self.parts:
            n = len(part.state_shapes(1))
            x, s = part(x, state[offset : offset + n])
            new_state += s
            offset += n
        return x, new_state


class Residual(StreamingPart):
    """SEANetResnetBlock: shortcut(x) + block(x)."""

    def __init__(self, block: SEANetResnetBlock):
        super().__init__()
        self.shortcut = streaming(block.shortcut)
        self.block = streaming(block.block)

    def state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        return self.shortcut.state_shapes(batch) + self.block.state_shapes(batch)

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        n = len(self.shortcut.state_shapes(1))
        skip, s1 = self.shortcut(x, state[:n])
        main, s2 = self.block(x, state[n:])
        return skip + main, s1 + s2


def streaming(module: nn.Module) -> StreamingPart:
    """The streaming twin of an encodec SEANet module tree (sharing its parameters)."""
    if isinstance(module, nn.Sequential):
        return Sequence([streaming(m) for m in module])
    if isinstance(module, SConv1d):
        return CausalConv(module)
    if isinstance(module, SConvTranspose1d):
        return CausalConvTranspose(module)
    if isinstance(module, SLSTM):
        return StatefulLSTM(module)
    if isinstance(module, SEANetResnetBlock):
        return Residual(module)
    if isinstance(module, (nn.ELU, nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Identity)):
        return Stateless(module)
    raise TypeError(f"no streaming version of {type(module).__name__}")


def zero_state(part: StreamingPart, batch: int, device: torch.device | str = "cpu") -> State:
    return [torch.zeros(shape, device=device) for shape in part.state_shapes(batch)]
