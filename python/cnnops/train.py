"""Training networks of cnnops.nn on cnnops.data datasets: the loop behind
``python -m cnnops train`` and ``python -m cnnops demo``.

One epoch: shuffle the training set (seeded), for each mini-batch run forward, the softmax
cross-entropy loss, ``model.backward(loss.backward())`` and one optimizer step; then evaluate on
the test set in eval mode. Per epoch it reports the mean training loss and accuracy (over the
batches as they were trained), the test loss and accuracy, the learning rate and the seconds
taken; at the end a confusion matrix of the test set. Everything random (initial weights,
shuffling, dropout) follows ``seed``."""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from . import data
from ._args import usage_error


@dataclass(frozen=True)
class ModelSpec:
    """A classifier builder of cnnops.nn.models as --model offers it: the square image sides it
    takes (`fits`, described by `sizes`) and the extra keyword arguments that size it for an image
    side (num_classes, in_channels, dtype and rng are passed to every builder)."""

    sizes: str
    fits: object
    kwargs: object = lambda side: {}


# --model names = builder names in cnnops.nn.models (the classifiers; fcn and yolo_tiny are not)
MODELS = {
    "lenet5": ModelSpec("28x28 or 32x32", lambda side: side in (28, 32), lambda side: {"input_size": side}),
    "mnist_cnn": ModelSpec("any size", lambda side: True, lambda side: {"input_size": side}),
    "inception_net": ModelSpec("at least 4x4", lambda side: side >= 4),
    "resnet18": ModelSpec("any size", lambda side: True, lambda side: {"small_input": side < 64}),
    "resnet34": ModelSpec("any size", lambda side: True, lambda side: {"small_input": side < 64}),
    "resnet50": ModelSpec("any size", lambda side: True, lambda side: {"small_input": side < 64}),
    "vgg11": ModelSpec("at least 32x32", lambda side: side >= 32),
    "vgg16": ModelSpec("at least 32x32", lambda side: side >= 32),
    "alexnet": ModelSpec("at least 63x63", lambda side: side >= 63),
    "alexnet_paper": ModelSpec("at least 67x67", lambda side: side >= 67),
    "googlenet": ModelSpec("at least 31x31", lambda side: side >= 31),
}
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "step", "cosine")

# python -m cnnops demo: LeNet-5 on the digits with random shifts of up to 2 pixels, cosine decay;
# 98-98.6% test accuracy (seed 0; 97.5-98.6% over seeds 0-2), about 66 CPU-seconds in all
DEMO = {"model": "lenet5", "dataset": "digits", "epochs": 25, "batch_size": 32, "lr": 2e-3, "optimizer": "adam",
        "schedule": "cosine", "seed": 0, "shift": 2}


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    lr: float
    seconds: float


@dataclass
class History:
    """Per-epoch statistics of a run, plus the test predictions after the last epoch."""

    epochs: list = field(default_factory=list)
    test_pred: np.ndarray | None = None

    def column(self, name: str) -> list:
        return [getattr(e, name) for e in self.epochs]

    def as_dict(self) -> dict:
        return {"epochs": [asdict(e) for e in self.epochs]}


def models_for(side: int) -> list:
    """The --model names whose networks take square images of this side."""
    return [name for name, spec in MODELS.items() if spec.fits(side)]


def build_model(name: str, dataset: data.Dataset, dtype="float32", seed: int = 0):
    """The cnnops.nn model `name` (one of MODELS) sized for `dataset` (its channels, image side and
    number of classes), initial weights drawn from a generator seeded with `seed`."""
    from .nn import models

    if name not in MODELS:
        raise ValueError(f"build_model: expected a model among {', '.join(MODELS)}, got {name!r}")
    c, h, w = dataset.input_shape
    if h != w:
        raise ValueError(f"build_model: expected square images, got {h}x{w}")
    spec = MODELS[name]
    if not spec.fits(h):
        raise ValueError(f"build_model: {name} expects {spec.sizes} images, got {h}x{w}")
    builder = getattr(models, name)
    model = builder(num_classes=dataset.num_classes, in_channels=c, dtype=dtype, rng=np.random.default_rng(seed),
                    **spec.kwargs(h))
    model.needs_input_grad = False  # nobody uses the gradient with respect to the images
    return model


def make_optimizer(name: str, model, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
    """SGD (with `momentum`), Adam or AdamW over the model's trainable parameters."""
    from . import nn

    params = model.parameters(trainable_only=True)
    if name == "sgd":
        return nn.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return nn.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return nn.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"make_optimizer: expected an optimizer among {', '.join(OPTIMIZERS)}, got {name!r}")


def make_schedule(name: str, optimizer, epochs: int):
    """None, a StepLR (x0.1 at 2/3 of the epochs) or a cosine decay to 0 over `epochs`."""
    from . import nn

    if name == "none":
        return None
    if name == "step":
        return nn.StepLR(optimizer, step_size=max(1, (2 * epochs) // 3), gamma=0.1)
    if name == "cosine":
        return nn.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    raise ValueError(f"make_schedule: expected a schedule among {', '.join(SCHEDULES)}, got {name!r}")


def train_step(model, loss_fn, optimizer, x, y) -> tuple:
    """One step on a batch: forward, loss, backward, update. Returns (loss, logits)."""
    logits = model(x)
    loss = float(loss_fn(logits, y))
    optimizer.zero_grad()
    model.backward(loss_fn.backward())
    optimizer.step()
    return loss, logits


def evaluate(model, x, y, batch_size: int = 256) -> tuple:
    """(mean cross-entropy, accuracy, predicted classes (N,)) of `model` on (x, y) in eval mode;
    the model's previous mode is restored."""
    from . import nn

    was_training = model.training
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total, preds = 0.0, []
    try:
        for xb, yb in data.batches(x, y, batch_size):
            logits = model(xb)
            total += float(loss_fn(logits, yb))
            preds.append(np.argmax(logits, axis=1))
    finally:
        model.train(was_training)
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    n = max(len(y), 1)
    return total / n, float(np.mean(pred == y)) if len(y) else 0.0, pred


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"confusion_matrix: expected predictions of shape {y_true.shape}, got {y_pred.shape}")
    for name, v in (("labels", y_true), ("predictions", y_pred)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"confusion_matrix: expected {name} in [0, {num_classes}), got [{v.min()}, {v.max()}]")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def format_confusion(cm: np.ndarray, classes=None) -> str:
    """The confusion matrix as text: one row per true class, with its recall at the right."""
    k = cm.shape[0]
    names = [str(c) for c in (classes if classes is not None else range(k))]
    label_w = max(4, *(len(n) for n in names)) if k <= 20 else 4
    cell_w = max(3, len(str(int(cm.max(initial=0)))))
    if k > 20:  # too wide to be useful as text: class indices instead of names
        names = [str(i) for i in range(k)]
    head = " " * (label_w + 1) + " ".join(n[:cell_w].rjust(cell_w) for n in names) + "  recall"
    lines = ["true \\ predicted", head]
    for i, n in enumerate(names):
        row = cm[i]
        tot = int(row.sum())
        rec = f"{100.0 * row[i] / tot:6.1f}%" if tot else "     –"
        lines.append(n[:label_w].rjust(label_w) + " " + " ".join(str(int(v)).rjust(cell_w) for v in row) + "  " + rec)
    return "\n".join(lines)


def plot_curves(history: History, path, title: str = "") -> None:
    """Save train/test loss and accuracy per epoch to an image (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = history.column("epoch")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, history.column("train_loss"), "o-", label="train")
    a1.plot(ep, history.column("test_loss"), "s-", label="test")
    a1.set_xlabel("epoch")
    a1.set_ylabel("cross-entropy")
    a1.set_yscale("log")
    a1.legend()
    a1.grid(alpha=0.3)
    a2.plot(ep, [100 * v for v in history.column("train_acc")], "o-", label="train")
    a2.plot(ep, [100 * v for v in history.column("test_acc")], "s-", label="test")
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy (%)")
    a2.legend()
    a2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@contextlib.contextmanager
def blas_single_thread():
    """One BLAS thread inside the block (threadpoolctl, which comes with scikit-learn; a no-op
    without it). The matrix products of small networks are far below the size where a BLAS
    thread pool pays off, and OpenBLAS's spinning threads next to the OpenMP threads of the
    cnnops kernels make them up to ~80x slower on a busy 2-core machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _progress(iterable, total, desc, enabled):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, unit="batch", dynamic_ncols=True)


def fit(model, dataset: data.Dataset, epochs: int, batch_size: int = 32, optimizer="adam", lr: float = 1e-3,
        schedule: str = "none", seed: int = 0, momentum: float = 0.9, weight_decay: float = 0.0,
        shift: int = 0, augment=None, progress: bool = False, log=print) -> History:
    """Train `model` on dataset.x_train for `epochs` epochs and evaluate on dataset.x_test after each.

    optimizer: a name among OPTIMIZERS or an Optimizer instance (then lr, momentum and
    weight_decay are ignored); schedule: a name among SCHEDULES (stepped once per epoch).
    shift: augment each training batch by random translations of up to `shift` pixels
    (data.random_shift). augment: a callable (batch, rng) -> batch applied to each training batch
    after the shift, e.g. data.make_augment("flip,crop"), or such a spec string. progress: a tqdm
    bar over the batches; log: called with one line per epoch (None: silent). BLAS runs
    single-threaded during the fit (blas_single_thread)."""
    if isinstance(augment, str):
        augment = data.make_augment(augment, dataset.x_train)
    with blas_single_thread():
        return _fit(model, dataset, epochs, batch_size, optimizer, lr, schedule, seed, momentum, weight_decay, shift,
                    augment, progress, log)


def _fit(model, dataset, epochs, batch_size, optimizer, lr, schedule, seed, momentum, weight_decay, shift, augment,
         progress, log) -> History:
    from . import nn

    if epochs < 1 or batch_size < 1:
        raise ValueError(f"fit: expected epochs >= 1 and batch_size >= 1, got {epochs} and {batch_size}")
    opt = make_optimizer(optimizer, model, lr, momentum, weight_decay) if isinstance(optimizer, str) else optimizer
    sched = make_schedule(schedule, opt, epochs)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    hist = History()
    nb = math.ceil(len(dataset.x_train) / batch_size)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        lr_now = opt.lr
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = _progress(data.batches(dataset.x_train, dataset.y_train, batch_size, shuffle=True, rng=rng), nb,
                        f"epoch {epoch}/{epochs}", progress)
        for xb, yb in bar:
            if shift:
                xb = data.random_shift(xb, shift, rng)
            if augment is not None:
                xb = augment(xb, rng)
            loss, logits = train_step(model, loss_fn, opt, xb, yb)
            if not math.isfinite(loss):
                raise FloatingPointError(f"fit: the loss became {loss} in epoch {epoch}; try a smaller learning rate")
            loss_sum += loss * len(yb)
            correct += int(np.sum(np.argmax(logits, axis=1) == yb))
            seen += len(yb)
            if progress:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{100.0 * correct / seen:.1f}%")
        if progress:
            bar.close()
        test_loss, test_acc, pred = evaluate(model, dataset.x_test, dataset.y_test, max(batch_size, 256))
        if sched is not None:
            sched.step()
        st = EpochStats(epoch, loss_sum / seen, correct / seen, test_loss, test_acc, lr_now, time.perf_counter() - t0)
        hist.epochs.append(st)
        hist.test_pred = pred
        if log is not None:
            log(f"epoch {epoch:>3}/{epochs}  train loss {st.train_loss:.4f} acc {100 * st.train_acc:6.2f}%  "
                f"test loss {st.test_loss:.4f} acc {100 * st.test_acc:6.2f}%  lr {lr_now:.2e}  {st.seconds:.1f}s")
    return hist


# ----------------------------------------------------------------------------------------------
# command line


# The image geometry of each --dataset, known before its files are read: (channels, side).
DATASET_GEOMETRY = {"digits": (1, None), "mnist": (1, 28), "fashion-mnist": (1, 28), "cifar10": (3, 32),
                    "cifar100": (3, 32)}

# Optional packages of the demo extra, and what needs them.
DEMO_EXTRA = 'pip install "cnnops[demo]"'


def _model_help() -> str:
    lines = [f"{name} ({spec.sizes})" for name, spec in MODELS.items()]
    return ("classifier of cnnops.nn.models and the image sides it takes: " + ", ".join(lines) +
            "; digits is 28x28 or 32x32 (--size), (fashion-)mnist 28x28, cifar 32x32")


def add_arguments(p: argparse.ArgumentParser, defaults: dict | None = None) -> None:
    """The options of ``python -m cnnops train`` (and ``demo``, with its own defaults)."""
    d = {"model": "lenet5", "dataset": "digits", "epochs": 10, "batch_size": 32, "lr": None, "optimizer": "adam",
         "schedule": "none", "seed": 0, "shift": 0}
    d.update(defaults or {})
    p.add_argument("--model", choices=list(MODELS), default=d["model"], metavar="MODEL",
                   help=_model_help() + f" (default {d['model']})")
    p.add_argument("--dataset", choices=list(data.DATASETS), default=d["dataset"],
                   help=f"digits ships with scikit-learn; the others are read from --data-dir (default {d['dataset']})")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX or CIFAR binary files")
    p.add_argument("--size", type=int, choices=(28, 32), default=None,
                   help="digits image side (default: 28 for mnist_cnn, 32 for the others)")
    p.add_argument("--epochs", type=int, default=d["epochs"], help=f"default {d['epochs']}")
    p.add_argument("--batch-size", type=int, default=d["batch_size"], help=f"default {d['batch_size']}")
    p.add_argument("--lr", type=float, default=d["lr"],
                   help="learning rate > 0 (default: 1e-3 for adam/adamw, 0.05 for sgd)" if d["lr"] is None
                   else f"learning rate > 0 (default {d['lr']})")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d["optimizer"], help=f"default {d['optimizer']}")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum, >= 0 (default 0.9)")
    p.add_argument("--weight-decay", type=float, default=0.0, help=">= 0 (default 0)")
    p.add_argument("--schedule", choices=SCHEDULES, default=d["schedule"],
                   help=f"learning-rate schedule per epoch (default {d['schedule']})")
    p.add_argument("--shift", type=int, default=d["shift"], metavar="PIXELS",
                   help=f"augment training batches by random translations of up to PIXELS (default {d['shift']})")
    p.add_argument("--augment", default=None, metavar="NAMES",
                   help="augment training batches with these, comma-separated: " +
                   "; ".join(f"{k} ({v})" for k, v in data.AUGMENTATIONS.items()))
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--seed", type=int, default=d["seed"], help="weights, shuffling, dropout, digits split")
    p.add_argument("--threads", type=int, default=None, help="cnnops threads, >= 1 (default: as configured)")
    p.add_argument("--save", default=None, metavar="PATH",
                   help="write the trained weights to PATH (.npz); its folder must exist")
    p.add_argument("--plot", default=None, metavar="PATH",
                   help="write loss/accuracy curves to PATH (e.g. curves.png; needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the bar needs tqdm)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="use only the first N >= 1 training and N test samples (for a quick try)")


def _missing(module: str) -> bool:
    """True when `module` cannot be imported (looked up without importing it)."""
    import importlib.util

    return importlib.util.find_spec(module) is None


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def check_arguments(args) -> str | None:
    """What is wrong with the parsed options of ``train``/``demo``, as one message, or None. Every
    check that can be made before any data is read or any model is built is made here."""
    if args.epochs < 1 or args.batch_size < 1 or args.shift < 0:
        return (f"expected --epochs >= 1, --batch-size >= 1 and --shift >= 0, got {args.epochs}, "
                f"{args.batch_size} and {args.shift}")
    if args.lr is not None and not (_finite(args.lr) and args.lr > 0):
        return f"argument --lr: expected a finite learning rate > 0, got {args.lr}"
    if not (_finite(args.momentum) and args.momentum >= 0):
        return f"argument --momentum: expected a finite value >= 0, got {args.momentum}"
    if not (_finite(args.weight_decay) and args.weight_decay >= 0):
        return f"argument --weight-decay: expected a finite value >= 0, got {args.weight_decay}"
    if args.threads is not None and not 1 <= args.threads < 2**31:
        return f"argument --threads: expected a thread count >= 1, got {args.threads}"
    if args.limit is not None and args.limit < 1:
        return f"argument --limit: expected N >= 1 samples, got {args.limit}"
    if args.augment is not None:
        try:
            data.augment.parse_augment(args.augment)
        except ValueError:
            return f"argument --augment: expected names among {', '.join(data.AUGMENTATIONS)}, got {args.augment!r}"
    if args.size is not None and args.dataset != "digits":
        return f"argument --size: applies to the digits only, got --size {args.size} with --dataset {args.dataset}"
    if data.DATASETS[args.dataset] and args.data_dir is None:
        return f"argument --data-dir: {args.dataset} is read from files; expected a data_dir, got None"
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        return f"argument --data-dir: no such folder: {args.data_dir}"
    for opt, path in (("--save", args.save), ("--plot", args.plot)):
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        if folder is not None and not os.path.isdir(folder):
            return f"argument {opt}: the folder {folder} does not exist"
    channels, side = DATASET_GEOMETRY[args.dataset]
    side = side or image_side(args)
    if not MODELS[args.model].fits(side):
        return (f"argument --model: {args.model} takes images of {MODELS[args.model].sizes}; {args.dataset} has "
                f"{channels}x{side}x{side} images; models that fit: {', '.join(models_for(side))}")
    needs = []
    if args.dataset == "digits" and _missing("sklearn"):
        needs.append("scikit-learn (the digits dataset)")
    if args.plot and _missing("matplotlib"):
        needs.append("matplotlib (--plot)")
    if _progress_bar(args) and _missing("tqdm"):
        needs.append("tqdm (the progress bar; --no-progress goes without)")
    if needs:
        return f"missing optional dependencies: {'; '.join(needs)}. Install them with: {DEMO_EXTRA}"
    return None


def image_side(args) -> int:
    """The digits image side: --size, else 28 for mnist_cnn and 32 for the other models."""
    if args.size is not None:
        return args.size
    return 28 if args.model == "mnist_cnn" else 32


def _progress_bar(args) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def run(args, parser: argparse.ArgumentParser | None = None) -> int:
    """Run the command line `args` (from add_arguments); returns the exit status (2 for bad
    arguments, with argparse's usage line when `parser` is given)."""
    problem = check_arguments(args)
    if problem is not None:
        return usage_error(parser, "cnnops train", problem)

    import cnnops
    from . import nn

    if args.threads is not None:
        cnnops.set_num_threads(args.threads)
    nn.init.manual_seed(args.seed)
    try:
        with warnings.catch_warnings():  # a dataset's note is printed below instead
            warnings.simplefilter("ignore", UserWarning)
            ds = data.load(args.dataset, args.data_dir, size=image_side(args) if args.dataset == "digits" else None,
                           dtype=args.dtype, seed=args.seed)
    except (OSError, ValueError, TypeError) as e:
        print(f"cnnops train: {e}", file=sys.stderr)
        return 2
    if ds.note:
        print(f"note: {ds.note}")
    if args.limit is not None:
        ds = ds.subset(args.limit, args.limit)
    lr = args.lr if args.lr is not None else (0.05 if args.optimizer == "sgd" else 1e-3)
    model = build_model(args.model, ds, dtype=args.dtype, seed=args.seed)
    print(f"{args.model} ({model.num_parameters():,} parameters) on {ds.name}: {len(ds.x_train)} train / "
          f"{len(ds.x_test)} test images of {'x'.join(map(str, ds.input_shape))}, {ds.num_classes} classes")
    augment = data.make_augment(args.augment, ds.x_train) if args.augment else None
    print(f"{args.optimizer} lr {lr:g}, schedule {args.schedule}, batch {args.batch_size}, {args.epochs} epochs, "
          f"shifts up to {args.shift} px, augment {', '.join(augment.names) if augment else 'none'}, "
          f"{cnnops.get_num_threads()} threads, seed {args.seed}")
    t0 = time.perf_counter()
    hist = fit(model, ds, args.epochs, args.batch_size, args.optimizer, lr, args.schedule, args.seed,
               args.momentum, args.weight_decay, shift=args.shift, augment=augment, progress=_progress_bar(args))
    total = time.perf_counter() - t0
    last = hist.epochs[-1]
    print(f"\nconfusion matrix of the test set ({len(ds.y_test)} images):")
    print(format_confusion(confusion_matrix(ds.y_test, hist.test_pred, ds.num_classes), ds.classes))
    print(f"\ntest accuracy {100 * last.test_acc:.2f}% after {args.epochs} epochs, {total:.1f} s of training")
    if args.save:
        model.save(args.save)
        print(f"weights written to {args.save}")
    if args.plot:
        plot_curves(hist, args.plot, f"{args.model} on {ds.name}")
        print(f"curves written to {args.plot}")
    return 0
