"""What the benchmark measures: the shapes, the two kinds of work, and their FLOP counts."""

from __future__ import annotations

import dataclasses

WORKS = ("train", "forward")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


@dataclasses.dataclass(frozen=True)
class Shape:
    """One problem: x is (batch, steps, inputs), batch first; ``layers`` stacked, ``bidirectional`` or
    not; ``cell`` 'rnn' (Elman, tanh), 'lstm' or 'gru'."""

    batch: int
    steps: int
    inputs: int
    hidden: int
    layers: int = 1
    bidirectional: bool = False
    cell: str = "rnn"

    @property
    def gates(self) -> int:
        return GATES[self.cell]

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def name(self) -> str:
        name = f"N{self.batch} T{self.steps} I{self.inputs} H{self.hidden} L{self.layers}"
        name += " bi" if self.bidirectional else ""
        return name if self.cell == "rnn" else f"{self.cell.upper()} {name}"

    def flops(self, work: str) -> float:
        """Matmul FLOPs: 2*N*G*H*(I_l + H) per step per layer-direction (I_l = D*H above layer 0; G gates:
        1 for the RNN, 4 for the LSTM, 3 for the GRU).

        Forward counts that (elementwise work is negligible); a training step counts 3x: the
        backward pass does twice the forward's matmul work (gradients of inputs and weights).
        """
        total = 0.0
        for layer in range(self.layers):
            layer_inputs = self.inputs if layer == 0 else self.directions * self.hidden
            per_step = 2.0 * self.batch * self.gates * self.hidden * (layer_inputs + self.hidden)
            total += per_step * self.steps * self.directions
        return total * (3 if work == "train" else 1)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"name": self.name}


# The grid: the lesson's shape, a mid-size layer, the largest (stacked, bidirectional),
# a long sequence, and a small bidirectional one.
GRID = (
    Shape(32, 15, 10, 20, 2),
    Shape(64, 100, 128, 256, 1),
    Shape(32, 50, 64, 128, 1, True),
    Shape(16, 1000, 32, 128, 1),
    Shape(64, 200, 256, 512, 2, True),
)
# LSTM and GRU on the same shapes, against torch.nn.LSTM / torch.nn.GRU.
CELL_GRID = tuple(dataclasses.replace(s, cell=c) for c in ("lstm", "gru") for s in GRID)
# How cost grows with sequence length at a fixed size.
T_SWEEP = tuple(Shape(32, steps, 64, 128, 1) for steps in (10, 100, 1000))

# --quick: checks that everything runs, not how fast.
QUICK_GRID = (Shape(4, 5, 3, 8, 2, True),)
QUICK_T_SWEEP = (Shape(4, 6, 3, 8, 1),)
QUICK_CELL_GRID = tuple(dataclasses.replace(s, cell=c) for c in ("lstm", "gru") for s in QUICK_GRID)


def largest(shapes) -> Shape:
    return max(shapes, key=lambda s: s.flops("forward"))
