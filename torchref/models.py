"""The lesson's models as the lesson writes them (13. RNN Basics, sections 4, 6 and 7).

Two additions: CharRNN's ``bidirectional`` option (the lesson's Exercise 3: the final forward
and backward states are concatenated before the Linear layer), and a ``cell`` option on every
model ('rnn', the lesson's default, 'lstm' or 'gru'; the next lesson's cells). With
``cell='lstm'`` the final state used is h_n of torch's (h_n, c_n).
"""

import torch
import torch.nn as nn

__all__ = ["CharRNN", "RNNClassifier", "RNNSeq2Seq", "SinPredictor"]

_RECURRENT = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _recurrent(cell, *args, **kwargs):
    """nn.RNN, nn.LSTM or nn.GRU by name."""
    if cell not in _RECURRENT:
        raise ValueError(f"`cell` must be one of {tuple(_RECURRENT)}, got {cell!r}")
    return _RECURRENT[cell](*args, **kwargs)


def _hidden(h_n):
    """h_n of an RNN/GRU; h_n of an LSTM's (h_n, c_n)."""
    return h_n[0] if isinstance(h_n, tuple) else h_n


class RNNClassifier(nn.Module):
    def __init__(self, input_size, hidden_size, num_classes, num_layers=1, cell="rnn"):
        super().__init__()
        self.rnn = _recurrent(
            cell, input_size, hidden_size,
            num_layers=num_layers,
            batch_first=True
        )
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        # x: (batch, seq, features)
        output, h_n = self.rnn(x)

        # Use last time step's hidden state
        # h_n[-1]: Last layer's hidden state
        out = self.fc(_hidden(h_n)[-1])
        return out


class RNNSeq2Seq(nn.Module):
    """Sequence → Sequence"""
    def __init__(self, input_size, hidden_size, output_size, cell="rnn"):
        super().__init__()
        self.rnn = _recurrent(cell, input_size, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        output, _ = self.rnn(x)
        # Apply FC to all time steps
        out = self.fc(output)  # (batch, seq, output_size)
        return out


class SinPredictor(nn.Module):
    def __init__(self, cell="rnn"):
        super().__init__()
        self.rnn = _recurrent(cell, 1, 32, batch_first=True)
        self.fc = nn.Linear(32, 1)

    def forward(self, x):
        _, h_n = self.rnn(x)
        return self.fc(_hidden(h_n)[-1]).squeeze()


class CharRNN(nn.Module):
    def __init__(self, vocab_size, embed_size, hidden_size, num_classes, bidirectional=False, cell="rnn"):
        super().__init__()
        self.bidirectional = bidirectional
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = _recurrent(cell, embed_size, hidden_size, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def forward(self, x):
        # x: (batch, seq) - character indices
        embedded = self.embedding(x)  # (batch, seq, embed)
        output, h_n = self.rnn(embedded)
        h_n = _hidden(h_n)
        # Exercise 3: concatenate the final forward and backward states
        final = torch.cat([h_n[-2], h_n[-1]], dim=-1) if self.bidirectional else h_n[-1]
        out = self.fc(final)
        return out
