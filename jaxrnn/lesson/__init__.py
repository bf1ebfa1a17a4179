"""The lesson's app: the ``jaxrnn`` CLI (``_cli``), one module per exercise, plots and the report.

Exercises 1-5 are ``shapes``, ``sine``, ``sentiment``, ``clipping`` and ``tagging``; ``section5``
computes the lesson's gradient-flow picture and ``section9`` its RNN / LSTM / GRU table. Each
exercise function trains and measures what its exercise asks for, in JAX and (on request)
PyTorch, writes its figures into ``out`` and returns an ``ExerciseResult`` (``_common``): flat
float metrics (``'sine.test_mse'``, and with a framework prefix, ``'torch.sine.test_mse'``), the
figures with captions, a printed summary and a Markdown section for REPORT.md (``_report``).

The library never imports this package.
"""
