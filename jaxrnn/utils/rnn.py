"""torch's ``torch.nn.utils.rnn`` for jaxrnn: packed sequences that pass through ``jax.jit``.

``from jaxrnn.utils.rnn import pack_padded_sequence, pad_packed_sequence`` ports torch's import
line for line, and the lesson's section 8 with it: every recurrent layer (``jaxrnn.RNN``,
``jaxrnn.LSTM``, ``jaxrnn.GRU`` and ``jaxrnn.functional.rnn``, ``lstm``, ``gru``) takes a
:class:`PackedSequence` as x and returns its output as one (time-major inside, whatever the
layer's ``batch_first``, as torch ignores batch_first for packed input); h_n holds each
sequence's state at its own last valid step, in the original batch order. This computes what
``seq_lengths=`` computes, torch's packed semantics, on a padded batch.

>>> import jax
>>> import jaxrnn
>>> from jaxrnn.utils.rnn import pack_padded_sequence, pad_packed_sequence
>>> rnn = jaxrnn.RNN(10, 20, batch_first=True)
>>> padded_seqs = jax.random.normal(jax.random.key(0), (3, 15, 10))  # (batch, time, features)
>>> lengths = [15, 4, 9]
>>> packed = pack_padded_sequence(padded_seqs, lengths, batch_first=True, enforce_sorted=False)
>>> variables = rnn.init(jax.random.key(1), packed)
>>> output, h_n = rnn.apply(variables, packed)
>>> output_padded, _ = pad_packed_sequence(output, batch_first=True)
>>> output_padded.shape, h_n.shape, output.data.shape  # torch's packed data: 15 + 4 + 9 rows
((3, 15, 20), (1, 3, 20), (28, 20))
>>> bool((output_padded[1, 4:] == 0).all()), bool((h_n[0, 1] == output_padded[1, 3]).all())
(True, True)
"""

from ..functional._packed import PackedSequence as PackedSequence
from ..functional._packed import pack_padded_sequence as pack_padded_sequence
from ..functional._packed import pack_sequence as pack_sequence
from ..functional._packed import pad_packed_sequence as pad_packed_sequence
from ..functional._packed import pad_sequence as pad_sequence

__all__ = ["PackedSequence", "pack_padded_sequence", "pack_sequence", "pad_packed_sequence", "pad_sequence"]
