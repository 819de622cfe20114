"""A plain Keras script, as keras.io writes it: seed000-cnn as a Sequential, Adam 1e-3,
batch 128, `fit` for one epoch over the first N training images (default all 60,000), then `evaluate` on the
test set. The whole-process yardstick for `mnistcnn train --backend keras`
(benchmarks/processes.py).

    python benchmarks/plain_keras.py DATA_DIR [N]
"""
import sys

from plain_data import mnist


def main(data_dir, n=60_000):
    import keras

    keras.utils.set_random_seed(0)
    data = mnist(data_dir)
    x = {s: images[..., None] for s, (images, _) in data.items()}
    y = {s: labels for s, (_, labels) in data.items()}
    L = keras.layers
    model = keras.Sequential([keras.Input((28, 28, 1)),
                              L.Conv2D(32, 5, padding="same", activation="relu"), L.MaxPooling2D(2),
                              L.Conv2D(16, 5, padding="same", activation="relu"), L.MaxPooling2D(2),
                              L.Flatten(), L.Dense(1024, activation="relu"), L.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x["train"][:n], y["train"][:n], batch_size=128, epochs=1, verbose=0)
    _, acc = model.evaluate(x["t10k"], y["t10k"], batch_size=1000, verbose=0)
    print(f"test accuracy {acc:.4f}")


if __name__ == "__main__":
    main(sys.argv[1], *map(int, sys.argv[2:]))
