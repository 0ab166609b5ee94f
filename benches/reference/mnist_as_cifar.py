"""Write MNIST (or Fashion-MNIST) in CIFAR-10's binary format: 3073-byte records (label, then
3x32x32 pixels, channel-major), the 28x28 digit centred in 32x32 and copied to the three
channels, the 60k training images split over data_batch_1.bin .. data_batch_5.bin and the 10k
test images in test_batch.bin. advlab's cifar10() reads the result like the real files, so
the loader and the CIFAR-sized models can be timed here without them.

    python3 benches/reference/mnist_as_cifar.py --mnist ../shared/data/mnist --out /tmp/mnist-cifar
    advlab run scripts/cifar_models.rhai dir=/tmp/mnist-cifar
"""
import argparse
import os

import numpy as np

from mnist_idx import read_idx


def records(images, labels):
    """(N, 28, 28) uint8 images and (N,) labels as CIFAR-10 records."""
    n = len(images)
    padded = np.zeros((n, 32, 32), dtype=np.uint8)
    padded[:, 2:30, 2:30] = images
    rgb = np.repeat(padded[:, None], 3, axis=1).reshape(n, 3072)
    return np.concatenate([labels.astype(np.uint8)[:, None], rgb], axis=1).tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mnist", default="../shared/data/mnist", help="folder of the four IDX files")
    ap.add_argument("--out", required=True, help="folder to write (cifar-10-batches-bin is created in it)")
    args = ap.parse_args()
    out = os.path.join(args.out, "cifar-10-batches-bin")
    os.makedirs(out, exist_ok=True)
    train_x = read_idx(args.mnist, "train-images-idx3-ubyte")
    train_y = read_idx(args.mnist, "train-labels-idx1-ubyte")
    test_x = read_idx(args.mnist, "t10k-images-idx3-ubyte")
    test_y = read_idx(args.mnist, "t10k-labels-idx1-ubyte")
    per = len(train_x) // 5
    for b in range(5):
        part = slice(b * per, (b + 1) * per if b < 4 else len(train_x))
        with open(os.path.join(out, f"data_batch_{b + 1}.bin"), "wb") as f:
            f.write(records(train_x[part], train_y[part]))
    with open(os.path.join(out, "test_batch.bin"), "wb") as f:
        f.write(records(test_x, test_y))
    print(f"wrote {len(train_x)} training and {len(test_x)} test records to {out}")


if __name__ == "__main__":
    main()
