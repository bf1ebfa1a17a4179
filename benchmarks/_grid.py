"""What the benchmark measures: the shapes, the two kinds of work, and their FLOP counts."""

from __future__ import annotations

import dataclasses

WORKS = ("train", "forward")


@dataclasses.dataclass(frozen=True)
class Shape:
    """One problem: x is (batch, steps, inputs), batch first; ``layers`` stacked, ``bidirectional`` or not."""

    batch: int
    steps: int
    inputs: int
    hidden: int
    layers: int = 1
    bidirectional: bool = False

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def name(self) -> str:
        name = f"N{self.batch} T{self.steps} I{self.inputs} H{self.hidden} L{self.layers}"
        return name + (" bi" if self.bidirectional else "")

    def flops(self, work: str) -> float:
        """Matmul FLOPs: 2*N*H*(I_l + H) per step per layer-direction (I_l = D*H above layer 0).

        Forward counts that (elementwise work is negligible); a training step counts 3x: the
        backward pass does twice the forward's matmul work (gradients of inputs and weights).
        """
        total = 0.0
        for layer in range(self.layers):
            layer_inputs = self.inputs if layer == 0 else self.directions * self.hidden
            total += 2.0 * self.batch * self.hidden * (layer_inputs + self.hidden) * self.steps * self.directions
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
# How cost grows with sequence length at a fixed size.
T_SWEEP = tuple(Shape(32, steps, 64, 128, 1) for steps in (10, 100, 1000))

# --quick: checks that everything runs, not how fast.
QUICK_GRID = (Shape(4, 5, 3, 8, 2, True),)
QUICK_T_SWEEP = (Shape(4, 6, 3, 8, 1),)


def largest(shapes) -> Shape:
    return max(shapes, key=lambda s: s.flops("forward"))
