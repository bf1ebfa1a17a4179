"""One process of a multi-process training run, for tests/training/test_multiprocess.py.

    python _multiprocess_worker.py SPEC.json

SPEC holds: ``process_id``, ``num_processes`` (1: no jax.distributed), ``port``, ``task`` ('mse':
SinPredictor on sine data; 'tokens': RNNSeq2Seq with cross-entropy over (batch, seq) tokens),
``epochs``, ``seed``, ``init_seed`` (of the starting weights, default 0), ``checkpoint_dir``,
``resume``, ``init_timeout``, ``heartbeat_timeout`` and ``out``, where the process writes its
history and final parameters (``out``.<process_id>.npz).
The devices come from XLA_FLAGS, set by the test. Every process trains on 4 devices in all.
"""

import json
import sys

import jax
import numpy as np

import jaxrnn
import jaxrnn.models


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    if spec["num_processes"] > 1:
        jaxrnn.initialize_distributed(f"127.0.0.1:{spec['port']}", spec["num_processes"], spec["process_id"],
                                      init_timeout=spec["init_timeout"], heartbeat_timeout=spec["heartbeat_timeout"])
    if spec["task"] == "mse":  # 26 examples in batches of 6: every batch padded to 8 over 4 devices, the last 2 -> 4
        x, y = jaxrnn.data.generate_sin_data(8, 26, seed=0)
        test = jaxrnn.data.generate_sin_data(8, 9, seed=1)
        model, kw = jaxrnn.models.SinPredictor(), dict(loss="mse", metric="mse")
    else:  # 18 token sequences in batches of 6 (6 -> 8 padded), cross-entropy and accuracy per token
        tokens, labels = jaxrnn.data.generate_tagging_data(24, 7, seed=0)
        inputs = jaxrnn.data.one_hot(tokens, 10)
        x, y, test = inputs[:18], labels[:18], (inputs[18:], labels[18:])
        model, kw = jaxrnn.models.RNNSeq2Seq(10, 16, 3), dict(loss="cross_entropy", metric="accuracy")
    variables = model.init(jax.random.key(spec.get("init_seed", 0)), x[:1])
    result = jaxrnn.train(model, variables, (x, y), test_data=test, epochs=spec["epochs"], batch_size=6,
                          learning_rate=0.01, clip_norm=1.0, seed=spec["seed"], devices=4, progress=False,
                          checkpoint_dir=spec["checkpoint_dir"], resume=spec["resume"], **kw)
    leaves = jax.tree_util.tree_flatten_with_path(result.variables)[0]
    params = {jax.tree_util.keystr(path): np.asarray(v) for path, v in leaves}
    history = {f"history.{k}": np.asarray(v, np.float64) for k, v in result.history.to_dict().items()
               if k != "metric"}
    np.savez(f"{spec['out']}.{jax.process_index()}.npz", **params, **history)
    print("done", jax.process_index(), flush=True)


if __name__ == "__main__":
    main()
