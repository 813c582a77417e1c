"""Model zoo, loading, input specs and session records of models.

Every loaded model carries its :class:`InputSpec`, so the engine draws noise in
pixel space ([0, 1]) and the model sees it normalised the way it was trained.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .noisy_resnet import ZOO_VARIANTS as NOISY_VARIANTS
from .noisy_resnet import build_variant as build_noisy_variant
from .resources import resource_path
from .sleep import ControlMLP
from .trust import is_trusted, remember_trust, sha256_of

MNIST_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_CLASSES = ("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_MODEL_FILE = "mnist_cnn.pt"
DEFAULT_MODEL_RECORD = "mnist_cnn.json"
# Sessions embed model weights up to this size; bigger models are referenced by path and sha256.
EMBED_WEIGHTS_LIMIT = 64 * 2**20


class ModelError(ValueError):
    """A model cannot be built or loaded; the message names the problem."""


class UntrustedModelError(ModelError):
    """A run needs a code-bearing model the user has not trusted; the message names it, its origin and sha256."""

    model: LoadedModel  # set where the app can ask about trusting this very model (unseal)


# Model kinds stored as programs: loading a TorchScript archive runs code it carries (``__setstate__``, scripted
# methods), and torch.export.load unpickles parts of a .pt2 archive (torch.load(weights_only=False) for pickled
# weights and constants, pickle.loads for opaque objects). Read from a session, such a model stays sealed until the
# user trusts its exact bytes (core/trust.py).
CODE_KINDS = ("torchscript", "exported")
CODE_KIND_NAMES = {"torchscript": "TorchScript model", "exported": "torch.export program"}


@dataclass(frozen=True)
class InputSpec:
    """The input a model expects: shape (C, H, W) of [0, 1] pixels, then (x − mean) / std."""

    shape: tuple[int, ...]
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def n_pixels(self) -> int:
        return int(np.prod(self.shape))

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict) -> "InputSpec":
        return cls(tuple(int(s) for s in data["shape"]), tuple(data["mean"]), tuple(data["std"]))


def parse_numbers(text: str, what: str, positive: bool = False) -> tuple[float, ...]:
    """``0.485,0.456,0.406`` (commas or spaces) as finite numbers; ValueError naming ``what`` otherwise."""
    try:
        values = tuple(float(part) for part in text.replace(",", " ").split())
    except ValueError:
        raise ValueError(f"{what} must be numbers separated by commas, got {text!r}") from None
    if not values:
        raise ValueError(f"{what} needs at least one number")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what} must be finite numbers, got {text!r}")
    if positive and min(values) <= 0:
        raise ValueError(f"{what} must be greater than 0, got {text!r}")
    return values


def parse_class_names(text: str) -> tuple[str, ...]:
    """Comma-separated class names, blanks dropped."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def checked_input_spec(shape: tuple[int, ...], mean, std, label: str) -> InputSpec:
    """An InputSpec whose mean and std have one value or one per channel, finite, std > 0; else ModelError."""
    spec = InputSpec(tuple(int(s) for s in shape), tuple(float(m) for m in mean), tuple(float(s) for s in std))
    for what, values in (("input mean", spec.mean), ("input std", spec.std)):
        if len(values) not in (1, spec.channels):
            raise ModelError(f"{label}: the {what} has {len(values)} values but the model takes {spec.channels} "
                             f"channel{'s' if spec.channels > 1 else ''} (give 1 or {spec.channels})")
        if not all(math.isfinite(v) for v in values):
            raise ModelError(f"{label}: the {what} must be finite, got {','.join(map(str, values))}")
    if min(spec.std) <= 0:
        raise ModelError(f"{label}: the input std must be greater than 0, got {','.join(map(str, spec.std))}")
    return spec


# --- The paper's architectures (Figs. 10, 11). Layer names match the authors' code. ---


class MnistCNN(nn.Module):
    """Conv(1→20,5) → pool → Conv(20→50,5) → pool → FC 800→500 → FC 500→K.

    ``conv_activation`` is the nonlinearity after the two conv layers: ReLU (the
    paper's MNIST CNN) or tanh (the variant the paper used for filter
    visualisation, §3.3: a tanh unit is never silent, so every filter has an STA).
    The fully connected layer keeps its ReLU.
    """

    CONV_ACTIVATIONS = ("relu", "tanh")

    def __init__(self, num_classes: int = 10, conv_activation: str = "relu") -> None:
        super().__init__()
        if conv_activation not in self.CONV_ACTIVATIONS:
            raise ValueError(f"conv activation must be one of {self.CONV_ACTIVATIONS}, got {conv_activation!r}")
        self.conv_activation = conv_activation
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(4 * 4 * 50, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Pooling before the nonlinearity gives bit-identical results (ReLU and tanh are monotone,
        # so they commute with max) and applies it to a quarter of the values: 15-30% faster on CPU.
        x = self._conv_nonlinearity(nn.functional.max_pool2d(self.conv1(x), 2))
        x = self._conv_nonlinearity(nn.functional.max_pool2d(self.conv2(x), 2))
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)

    def _conv_nonlinearity(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv_activation == "tanh":  # a plain branch: TorchScript and torch.fx both take it
            return torch.tanh(x)
        return torch.relu(x)


class MLP(nn.Module):
    """784 → 1000 → K with ReLU."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 1000)
        self.fc2 = nn.Linear(1000, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class LogisticRegression(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.fc = nn.Linear(784, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class RowRNN(nn.Module):
    """Two-layer tanh RNN reading the 28 image rows, then FC to K."""

    def __init__(self, num_classes: int = 10, hidden: int = 100) -> None:
        super().__init__()
        self.rnn = nn.RNN(28, hidden, num_layers=2, nonlinearity="tanh", batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.reshape(x.shape[0], 28, 28))
        return self.fc(out[:, -1])


class CifarCNN(nn.Module):
    """The CIFAR-10 CNN of Fig. 11 (BatchNorm, three conv stages, two FC stages)."""

    def __init__(self, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()

        def stage(c_in: int, c_mid: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_mid, 3, padding=1), nn.BatchNorm2d(c_mid), nn.ReLU(inplace=True),
                nn.Conv2d(c_mid, c_out, 3, padding=1), nn.ReLU(inplace=True),
            )

        self.conv1 = stage(3, width, 64)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = stage(64, 128, 128)
        self.pool2 = nn.Sequential(nn.MaxPool2d(2), nn.Dropout2d(0.05))
        self.conv3 = stage(128, 256, 256)
        self.pool3 = nn.MaxPool2d(2)
        self.fc_layer1 = nn.Sequential(nn.Dropout(0.1), nn.Linear(4096, 1024), nn.ReLU(inplace=True),
                                       nn.Linear(1024, 512), nn.ReLU(inplace=True))
        self.fc_layer2 = nn.Sequential(nn.Dropout(0.1), nn.Linear(512, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(x))
        x = self.pool3(self.conv3(x))
        return self.fc_layer2(self.fc_layer1(x.flatten(1)))


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[int], nn.Module]
    input_spec: InputSpec
    class_names: tuple[str, ...]
    description: str


_MNIST_SPEC = InputSpec((1, 28, 28))
ZOO: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("mnist_cnn", MnistCNN, _MNIST_SPEC, MNIST_CLASSES, "MNIST CNN (paper Fig. 10)"),
        Architecture("mnist_cnn_tanh", lambda k: MnistCNN(k, conv_activation="tanh"), _MNIST_SPEC, MNIST_CLASSES,
                     "MNIST CNN with tanh after its conv layers (paper §3.3: no silent filters)"),
        Architecture("mlp", MLP, _MNIST_SPEC, MNIST_CLASSES, "MLP 784-1000-10"),
        Architecture("logreg", LogisticRegression, _MNIST_SPEC, MNIST_CLASSES, "Logistic regression"),
        Architecture("rnn", RowRNN, _MNIST_SPEC, MNIST_CLASSES, "2-layer tanh RNN over rows"),
        Architecture("cifar_cnn", CifarCNN, InputSpec((3, 32, 32)), CIFAR10_CLASSES, "CIFAR-10 CNN (paper Fig. 11)"),
        # Robustness lab (core/noisy_resnet.py): noise after each residual addition, on at test time.
        *(Architecture(name, partial(build_noisy_variant, name),
                       InputSpec((channels, 32, 32)) if channels == 3 else _MNIST_SPEC,
                       CIFAR10_CLASSES if channels == 3 else MNIST_CLASSES,
                       f"Noisy pre-activation ResNet{6 * blocks + 2}" + (f", ensemble of {members}" if members else "")
                       + (" (CIFAR-10)" if channels == 3 else ""))
          for name, (channels, members, blocks, _) in NOISY_VARIANTS.items()),
        # The sleep paper's control (core/sleep.py) and its distillation twin with linear outputs.
        Architecture("tadros_fc", ControlMLP, _MNIST_SPEC, MNIST_CLASSES,
                     "MLP 784-1200-1200-10, no biases, ReLU outputs, dropout 0.2 (sleep paper's control)"),
        Architecture("tadros_fc_logits", lambda k: ControlMLP(k, output="linear"), _MNIST_SPEC, MNIST_CLASSES,
                     "MLP 784-1200-1200-10, no biases, linear outputs (defensive distillation)"),
    )
}


class PixelSpaceModel(nn.Module):
    """Wraps a network so it takes [0, 1] pixels and applies its normalisation itself."""

    pixel_mean: torch.Tensor  # buffers
    pixel_std: torch.Tensor

    def __init__(self, net: nn.Module, spec: InputSpec) -> None:
        super().__init__()
        self.net = net
        channels = spec.channels
        mean = torch.tensor(spec.mean, dtype=torch.float32).expand(channels).reshape(1, channels, 1, 1)
        std = torch.tensor(spec.std, dtype=torch.float32).expand(channels).reshape(1, channels, 1, 1)
        self.register_buffer("pixel_mean", mean.clone(), persistent=False)
        self.register_buffer("pixel_std", std.clone(), persistent=False)
        self._identity = bool(torch.all(mean == 0) and torch.all(std == 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._identity:
            x = (x - self.pixel_mean) / self.pixel_std
        return self.net(x)


@dataclass
class LoadedModel:
    """A ready-to-probe classifier and everything needed to record or rebuild it."""

    kind: str  # "default" | "zoo" | "torchscript" | "torchvision"
    architecture: str  # zoo name, torchvision name, or "torchscript"
    net: nn.Module  # the raw network (expects normalised input)
    input_spec: InputSpec
    class_names: tuple[str, ...]
    weights_path: str | None = None
    extra: dict = field(default_factory=dict)
    archive: bytes | None = None  # a code-bearing model's file, byte for byte as loaded (what sessions store)

    sealed = False  # True for a code-bearing model read from a file and not loaded (SealedModel)

    def __post_init__(self) -> None:
        self.net.eval()
        self.pixel_model = PixelSpaceModel(self.net, self.input_spec).eval()

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def display_name(self) -> str:
        if self.kind == "default":
            return "Bundled MNIST CNN"
        if self.weights_path:
            return f"{self.architecture} ({Path(self.weights_path).name})"
        return self.architecture

    def layers(self) -> dict[str, nn.Module]:
        """Named layers that own parameters (for STA and microstimulation panels)."""
        if self.kind == "exported":  # its graph calls aten ops, not its submodules: forward hooks would never fire
            return {}
        return {
            name: module
            for name, module in self.net.named_modules()
            if name and any(True for _ in module.parameters(recurse=False))
        }

    def to(self, device: torch.device | str) -> "LoadedModel":
        self.pixel_model.to(device)
        return self

    def weights_sha256(self) -> str:
        """Hash of the weights' values (names, dtypes, shapes, bytes), not of a file's layout."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.net.state_dict().items()):
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.numpy().tobytes() if tensor.dtype != torch.bfloat16 else
                          tensor.view(torch.int16).numpy().tobytes())
        return digest.hexdigest()

    def archive_sha256(self) -> str | None:
        """sha256 of a code-bearing model's archive bytes (what trust is given to); None for plain weights."""
        return sha256_of(self.archive) if self.archive is not None else None

    def describe(self) -> dict:
        """JSON-friendly description stored in sessions."""
        description = {
            "kind": self.kind,
            "architecture": self.architecture,
            "input_spec": self.input_spec.to_dict(),
            "class_names": list(self.class_names),
            "weights_path": self.weights_path,
            "weights_sha256": self.weights_sha256(),
            "n_parameters": int(sum(p.numel() for p in self.net.parameters())),
            **self.extra,
        }
        if self.archive is not None:
            description["archive_sha256"] = self.archive_sha256()
        return description


class _SealedNet(nn.Module):
    """Stands in for a code-bearing network that was not loaded: using it is the one-line trust error."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def forward(self, *args, **kwargs):
        raise UntrustedModelError(self.message)


class SealedModel(LoadedModel):
    """A code-bearing model read from a session and never loaded: its description and exact bytes only.

    It shows (name, classes, input shape), saves byte for byte and exports stored results; anything that would
    run it raises :class:`UntrustedModelError` until :func:`unseal` loads it for a user who trusts it.
    """

    sealed = True

    def __init__(self, description: dict, blob: bytes | None, label: str, origin: str) -> None:
        self.description = dict(description)
        self.label, self.origin = label, origin
        self.stored_sha256 = sha256_of(blob) if blob is not None else None
        stand_in = _SealedNet("")
        super().__init__(description.get("kind", "torchscript"), description.get("architecture", "torchscript"),
                         stand_in, InputSpec.from_dict(description["input_spec"]),
                         tuple(str(name) for name in description.get("class_names") or ()),
                         weights_path=description.get("weights_path"), archive=blob)
        stand_in.message = untrusted_message(self)  # the message needs the model built

    def weights_sha256(self) -> str:
        return str(self.description.get("weights_sha256", ""))

    def archive_sha256(self) -> str | None:
        """The sha256 of the bytes that would run: the embedded archive's, else the referenced file's now."""
        if self.stored_sha256 is not None:
            return self.stored_sha256
        path = self.weights_path
        return sha256_of(path) if path and Path(path).is_file() else None

    def describe(self) -> dict:
        return dict(self.description)

    def layers(self) -> dict[str, nn.Module]:
        return {}


def untrusted_message(model: SealedModel) -> str:
    sha = model.archive_sha256()
    source = "embedded in the session" if model.stored_sha256 is not None else \
        f"referenced file {model.weights_path}" if model.weights_path else "no stored archive"
    what = CODE_KIND_NAMES.get(model.kind, "TorchScript model")
    if sha is None:
        return (f"{model.label} in {model.origin} is a {what} whose archive is missing "
                f"({source}); it cannot be loaded")
    return (f"{model.label} in {model.origin} is a {what} ({source}); loading it runs code stored in "
            f"the file, so it is not loaded unless you trust it: sha256 {sha}; add --trust-model {sha} "
            "(the app asks)")


def unseal(model: LoadedModel, trusted: tuple[str, ...] | set[str] = ()) -> LoadedModel:
    """``model`` ready to run: a sealed one is loaded only when its archive's sha256 is trusted (``trusted`` or
    remembered), else :class:`UntrustedModelError`. Trust is checked on the very bytes that are loaded."""
    if not model.sealed:
        return model
    assert isinstance(model, SealedModel)  # the one sealed kind
    sha = model.archive_sha256()
    if sha is None or not is_trusted(sha, set(trusted)):
        error = UntrustedModelError(untrusted_message(model))
        error.model = model  # the app asks the user about this very model
        raise error
    description = model.describe()
    spec = InputSpec.from_dict(description["input_spec"])
    from_bytes = _exported_from_bytes if model.kind == "exported" else _torchscript_from_bytes
    if model.archive is not None:
        loaded = from_bytes(model.archive, spec, model.class_names, model.label, weights_path=model.weights_path,
                            stored=True)
    else:
        assert model.weights_path is not None  # a sealed model without its bytes was read from this file
        data = Path(model.weights_path).read_bytes()
        if sha256_of(data) != sha:  # the file changed between the check and the read
            raise UntrustedModelError(untrusted_message(model))
        loaded = from_bytes(data, spec, model.class_names, model.label, weights_path=model.weights_path,
                            stored=True)
    if loaded.weights_sha256() != model.weights_sha256():
        raise ModelError(f"{model.label} in {model.origin}: its weights do not match their recorded sha256 "
                         "(file damaged?)")
    loaded.extra.update({k: v for k, v in description.items() if k not in _DESCRIPTION_KEYS})
    return loaded


def serialize_state_dict(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, buffer)
    return buffer.getvalue()


def _load_state_dict(net: nn.Module, source: str | Path | bytes, label: str) -> tuple[str, ...]:
    """Load ``source`` into ``net``; the class names the checkpoint carries (``categories`` or ``class_names``, at
    its top or under ``meta``), else ()."""
    try:
        if isinstance(source, bytes):
            state = torch.load(io.BytesIO(source), map_location="cpu", weights_only=True)
        else:
            state = torch.load(source, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"weights file not found: {label}") from None
    except Exception as exc:  # torch raises many types for non-checkpoint files
        raise ModelError(f"{label} is not a PyTorch state_dict file ({type(exc).__name__})") from None
    names: tuple[str, ...] = ()
    if isinstance(state, dict):
        meta = state.get("meta")
        for holder in (state, meta if isinstance(meta, dict) else {}):
            for key in ("categories", "class_names"):
                if isinstance(holder.get(key), (list, tuple)) and not names:
                    names = tuple(str(name) for name in holder[key])
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    elif isinstance(state, dict):
        state = {k: v for k, v in state.items() if k not in ("categories", "class_names", "meta")}
    if not isinstance(state, dict):
        raise ModelError(f"{label} does not hold a state_dict (found {type(state).__name__})")
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise ModelError(f"{label} does not fit this architecture: {detail}") from None
    return names


def build_zoo(architecture: str, num_classes: int | None = None) -> nn.Module:
    if architecture not in ZOO:
        raise ModelError(f"unknown architecture {architecture!r}; the zoo has {', '.join(ZOO)}")
    arch = ZOO[architecture]
    return arch.build(num_classes or len(arch.class_names))


def load_zoo(
    architecture: str,
    weights: str | Path | bytes | None = None,
    class_names: tuple[str, ...] | None = None,
    kind: str = "zoo",
    weights_path: str | None = None,
    input_spec: InputSpec | None = None,
) -> LoadedModel:
    """``input_spec``: the architecture's own unless given (a user's normalisation, or the one a session stored)."""
    arch = ZOO.get(architecture)
    if arch is None:
        raise ModelError(f"unknown architecture {architecture!r}; the zoo has {', '.join(ZOO)}")
    names = tuple(class_names) if class_names else arch.class_names
    net = arch.build(len(names))
    if weights is not None:
        label = weights_path or (str(weights) if not isinstance(weights, bytes) else "embedded weights")
        _load_state_dict(net, weights, label)
        if weights_path is None and not isinstance(weights, bytes):
            weights_path = str(weights)
    return LoadedModel(kind, architecture, net, input_spec or arch.input_spec, names, weights_path=weights_path)


def default_model_record() -> dict:
    """Training record of the bundled CNN (accuracy on held-out real digits, etc.)."""
    return json.loads(resource_path(DEFAULT_MODEL_RECORD).read_text())


def recorded_heldout_accuracy(model: LoadedModel) -> float | None:
    """The held-out accuracy recorded with a model (the bundled CNN's record, or what the run that trained it
    measured); None when nothing was recorded."""
    if model.kind == "default":
        return default_model_record().get("heldout_accuracy")
    return model.extra.get("heldout_accuracy")


def load_default() -> LoadedModel:
    """The bundled MNIST CNN trained on real digits; works offline."""
    path = resource_path(DEFAULT_MODEL_FILE)
    model = load_zoo("mnist_cnn", path, kind="default", weights_path=str(path))
    # The install path means nothing on another machine; the resource name does.
    model.weights_path = None
    model.extra["resource"] = DEFAULT_MODEL_FILE
    return model


def load_torchscript(path: str | Path, input_shape: tuple[int, ...], class_names=None,
                     mean=(0.0,), std=(1.0,)) -> LoadedModel:
    """A TorchScript file the user chose: choosing it is trusting it, so its sha256 is remembered as trusted."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"TorchScript file not found: {path}")
    data = path.read_bytes()
    spec = checked_input_spec(input_shape, mean, std, str(path))
    model = _torchscript_from_bytes(data, spec, class_names, str(path), weights_path=str(path))
    remember_trust(sha256_of(data), path.name, str(path))
    return model


class ExportedNet(nn.Module):
    """The module of a torch.export program. Its train/eval mode was fixed when it was exported (dropout and batch
    norm are traced ops), and the graph module refuses ``eval()``, so switching modes here changes nothing."""

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        self.program = program

    def train(self, mode: bool = True) -> "ExportedNet":
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


def load_exported(path: str | Path, input_shape: tuple[int, ...] | None = None, class_names=None,
                  mean=(0.0,), std=(1.0,)) -> LoadedModel:
    """A ``torch.export`` program (.pt2) the user chose. torch.export.load unpickles parts of the archive, so
    choosing the file is trusting it, as for TorchScript. ``input_shape`` defaults to the one it was exported with."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"exported program file not found: {path}")
    data = path.read_bytes()
    model = _exported_from_bytes(data, input_shape, class_names, str(path), weights_path=str(path), mean=mean,
                                 std=std)
    remember_trust(sha256_of(data), path.name, str(path))
    return model


def _exported_from_bytes(data: bytes, spec: InputSpec | tuple[int, ...] | None, class_names, label: str,
                         weights_path: str | None = None, mean=(0.0,), std=(1.0,), stored: bool = False) \
        -> LoadedModel:
    """Unpickles parts of the archive: call only for a file the user chose or trusts. ``spec``: an InputSpec (from a
    session), an input shape, or None for the exported one."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.export warns that its format is still changing
            program = torch.export.load(io.BytesIO(data))
    except Exception as exc:
        raise ModelError(f"{label} is not a torch.export program ({type(exc).__name__})") from None
    inputs = [node.meta.get("val") for node in program.graph.nodes if node.op == "placeholder"
              and node.name in program.graph_signature.user_inputs]
    if len(inputs) != 1 or not hasattr(inputs[0], "shape") or len(inputs[0].shape) != 4:
        raise ModelError(f"{label}: a classifier program must take one (batch, C, H, W) tensor")
    exported_shape = inputs[0].shape
    if isinstance(exported_shape[0], int):
        raise ModelError(f"{label} was exported for a fixed batch of {exported_shape[0]}; export it with "
                         "dynamic_shapes=({0: torch.export.Dim('batch')},)")
    if not isinstance(spec, InputSpec):
        spec = checked_input_spec(spec or tuple(int(s) for s in exported_shape[1:]), mean, std, label)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the graph module's construction warns about torch internals
        net = ExportedNet(program.module())
    names = _class_names_for(net, spec, class_names, label, stored)
    return LoadedModel("exported", "exported", net, spec, names, weights_path=weights_path, archive=data)


def _class_names_for(net: nn.Module, spec: InputSpec, class_names, label: str, stored: bool = False) \
        -> tuple[str, ...]:
    """``class_names`` when they are one per output of ``net``, else ModelError; None: the output indices.
    ``stored``: names a session recorded, checked when the model was chosen; the net is not run again."""
    if stored and class_names:
        return tuple(str(name) for name in class_names)
    probed = _probe_class_names(net, spec, Path(label).name)
    if not class_names:
        return probed
    if len(class_names) != len(probed):
        raise ModelError(f"{label}: {len(class_names)} class names given but the model has {len(probed)} outputs")
    return tuple(str(name) for name in class_names)


def _torchscript_from_bytes(data: bytes, spec: InputSpec, class_names, label: str,
                            weights_path: str | None = None, stored: bool = False) -> LoadedModel:
    """Runs the archive's code: call only for a file the user chose or trusts."""
    try:
        with warnings.catch_warnings():
            # torch.jit is deprecated in favour of torch.export; a user's TorchScript file still has to load.
            warnings.simplefilter("ignore", FutureWarning)
            net = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as exc:
        raise ModelError(f"{label} is not a TorchScript model ({type(exc).__name__})") from None
    names = _class_names_for(net, spec, class_names, label, stored)
    return LoadedModel("torchscript", "torchscript", net, spec, names, weights_path=weights_path, archive=data)


def _probe_class_names(net: nn.Module, spec: InputSpec, label: str) -> tuple[str, ...]:
    """Run one blank input to learn the number of classes (and check the shape fits)."""
    try:
        with torch.inference_mode():
            out = net.eval()(torch.zeros(1, *spec.shape))
    except Exception as exc:
        raise ModelError(f"{label} does not accept input of shape {tuple(spec.shape)}: {exc}".splitlines()[0]) from None
    if out.ndim != 2:
        raise ModelError(f"{label} returns shape {tuple(out.shape)}; a classifier must return (batch, classes)")
    return tuple(str(i) for i in range(out.shape[1]))


def _torchvision_weights(torchvision, name: str, weights: str | Path | None):
    """The torchvision weights enum member ``weights`` names (``ResNet152_Weights.IMAGENET1K_V2``,
    ``IMAGENET1K_V2``, ``DEFAULT``), or the one whose published file has this file's name; None if neither."""
    try:
        members = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return None
    text = str(weights)
    if not Path(text).is_file():
        word = text.split(".")[-1]
        if text.count(".") <= 1 and (word == "DEFAULT" or word in members.__members__):
            return members[word] if word != "DEFAULT" else members.DEFAULT
        return None
    return next((m for m in members if Path(m.url).name == Path(text).name), None)


def load_torchvision(name: str, weights: str | Path | None = None, download: bool = False,
                     input_size: int | None = None) -> LoadedModel:
    """A torchvision classification model, on ``input_size``² images (default 224; paper Table 1 also uses 32).

    ``weights``: a state_dict file, or a torchvision weights name (``ResNet152_Weights.IMAGENET1K_V2``) read from
    the torch hub cache (downloaded with ``download``); None with ``download``: the default pretrained weights.
    Class names come from the weights' metadata (a weights name, a file published under one, or a checkpoint
    carrying ``categories``), else they are the class indices.
    """
    try:
        import torchvision
    except Exception as exc:
        raise ModelError(f"torchvision is not usable here: {exc}".splitlines()[0]) from None
    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise ModelError(f"torchvision has no classification model {name!r}")
    if input_size is not None and not 8 <= int(input_size) <= 4096:
        raise ModelError(f"input size must be between 8 and 4096 pixels, got {input_size}")
    class_names: tuple[str, ...] | None = None
    known = _torchvision_weights(torchvision, name, weights) if weights is not None else None
    if weights is not None and not Path(str(weights)).is_file() and known is not None:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(known.url).name
        if not cached.is_file() and not download:
            raise ModelError(f"{known} is not in the torch hub cache ({cached}); give the file with --weights or "
                             "add --download")
        try:
            net = torchvision.models.get_model(name, weights=known)
        except Exception as exc:
            raise ModelError(f"could not load {known}: {exc}".splitlines()[0]) from None
        class_names = tuple(known.meta.get("categories") or ())
        weights = cached
    elif weights is not None:
        if not Path(str(weights)).is_file():
            raise ModelError(f"weights file not found: {weights} (nor is it a {name} weights name)")
        net = torchvision.models.get_model(name, weights=None)
        class_names = _load_state_dict(net, Path(weights), str(weights)) or \
            (tuple(known.meta.get("categories") or ()) if known is not None else ())
    elif download:
        try:
            weight_enum = torchvision.models.get_model_weights(name).DEFAULT
            net = torchvision.models.get_model(name, weights=weight_enum)
        except Exception as exc:
            raise ModelError(f"could not download weights for {name}: {exc}".splitlines()[0]) from None
        class_names = tuple(weight_enum.meta.get("categories") or ())
    else:
        raise ModelError(f"torchvision model {name} needs a weights file (or download=True when online)")
    size = int(input_size or 224)
    spec = InputSpec((3, size, size), IMAGENET_MEAN, IMAGENET_STD)
    probed = _probe_class_names(net, spec, name)  # also checks the network takes this size
    if not class_names or len(class_names) != len(probed):
        class_names = probed
    return LoadedModel("torchvision", name, net, spec, class_names,
                       weights_path=str(weights) if weights else None)


def load_model(spec: str, weights: str | Path | None = None, *, input_shape: tuple[int, ...] | None = None,
               class_names: tuple[str, ...] | None = None, mean: tuple[float, ...] | None = None,
               std: tuple[float, ...] | None = None, download: bool = False, input_size: int | None = None) \
        -> LoadedModel:
    """One entry point for the CLI and the GUI.

    ``spec`` is ``default``, a zoo name (``mnist_cnn``, ``mlp``...), ``torchscript`` (weights = the .pt file),
    ``exported`` (weights = the torch.export .pt2 file) or ``torchvision:<name>``. ``class_names``, ``mean`` and
    ``std`` replace the model's own for every kind (None keeps them): one class name per output, one mean and std
    value or one per channel, std > 0.
    """
    if spec == "default":
        return _customised(load_default(), class_names, mean, std, "the bundled MNIST CNN")
    if spec in ZOO:
        if weights is None:
            raise ModelError(f"zoo model {spec} needs a weights file (train one with `wna train {spec}`)")
        try:  # the class names set the size of the output layer the weights must fit
            model = load_zoo(spec, weights, class_names=class_names)
        except ModelError as exc:
            raise ModelError(f"{exc} ({len(class_names)} class names given)" if class_names else str(exc)) from None
        return _customised(model, None, mean, std, str(weights))
    if spec in CODE_KINDS:
        if weights is None:
            raise ModelError(f"a {CODE_KIND_NAMES[spec]} needs its file (--weights)")
        normalisation = {"mean": mean or (0.0,), "std": std or (1.0,)}
        if spec == "exported":
            return load_exported(weights, input_shape, class_names, **normalisation)
        return load_torchscript(weights, input_shape or (1, 28, 28), class_names, **normalisation)
    if spec.startswith("torchvision:"):
        model = load_torchvision(spec.split(":", 1)[1], weights, download=download, input_size=input_size)
        return _customised(model, class_names, mean, std, model.architecture)
    raise ModelError(f"unknown model {spec!r}: use default, a zoo name ({', '.join(ZOO)}), "
                     "torchscript, exported or torchvision:<name>")


def _customised(model: LoadedModel, class_names, mean, std, label: str) -> LoadedModel:
    """``model`` with the user's class names and normalisation in place of its own (checked against it)."""
    if class_names is None and mean is None and std is None:
        return model
    spec = checked_input_spec(model.input_spec.shape, model.input_spec.mean if mean is None else mean,
                              model.input_spec.std if std is None else std, label)
    names = model.class_names
    if class_names is not None:
        if len(class_names) != model.n_classes:
            raise ModelError(f"{label}: {len(class_names)} class names given but the model has "
                             f"{model.n_classes} outputs")
        names = tuple(str(name) for name in class_names)
    return LoadedModel(model.kind, model.architecture, model.net, spec, names, weights_path=model.weights_path,
                       extra=model.extra, archive=model.archive)


def own_normalisation_and_names(model: LoadedModel) -> tuple[tuple[float, ...], tuple[float, ...], tuple[str, ...]]:
    """(mean, std, class names) that ``load_model`` gives ``model``'s kind and file with no options: what a command
    line may leave out. Class names of a torchvision checkpoint that carries its own count as given."""
    if model.kind in ("default", "zoo") and model.architecture in ZOO:
        arch = ZOO[model.architecture]
        return arch.input_spec.mean, arch.input_spec.std, arch.class_names
    indices = tuple(str(i) for i in range(model.n_classes))
    if model.kind == "torchvision":
        try:
            import torchvision

            members = torchvision.models.get_model_weights(model.architecture)
            known = _torchvision_weights(torchvision, model.architecture, model.weights_path) \
                if model.weights_path else members.DEFAULT
        except Exception:  # no weights enum for this model: its classes are the indices
            known = None
        categories = tuple(known.meta.get("categories") or ()) if known is not None else ()
        return IMAGENET_MEAN, IMAGENET_STD, categories if len(categories) == model.n_classes else indices
    return (0.0,), (1.0,), indices


# --- Session records: enough to rebuild the exact model from the session file alone. ---


def model_record(model: LoadedModel) -> tuple[dict, bytes | None]:
    """(description, weights blob), serialised from the loaded network itself (never re-read from
    ``weights_path``, which may have moved or changed). The blob is None only when it is too large
    to embed and a weights file to reference exists; otherwise the session could not be reopened."""
    blob: bytes | None
    if model.archive is not None:  # a code-bearing model keeps the exact bytes it was loaded (and trusted) from
        blob = model.archive
    elif model.kind in CODE_KINDS:
        buffer = io.BytesIO()
        torch.jit.save(model.net, buffer)
        blob = buffer.getvalue()
    else:
        blob = serialize_state_dict(model.net.state_dict())
    if len(blob) > EMBED_WEIGHTS_LIMIT and model.weights_path and Path(model.weights_path).is_file():
        blob = None
    return model.describe(), blob


_DESCRIPTION_KEYS = ("kind", "architecture", "input_spec", "class_names", "weights_path", "weights_sha256",
                     "n_parameters", "archive_sha256")


def model_from_record(desc: dict, blob: bytes | None, label: str = "the model", origin: str = "the session") \
        -> LoadedModel:
    """The model a session describes, rebuilt from data alone: architectures by name, weights as tensors
    (``weights_only``). A code-bearing model comes back sealed (never loaded here; see :func:`unseal`)."""
    kind, arch = desc["kind"], desc["architecture"]
    if kind in CODE_KINDS:
        return SealedModel(desc, blob, label, origin)
    names = tuple(desc.get("class_names") or ())
    if kind == "default" and blob is None:
        return load_default()
    if kind in ("default", "zoo"):
        if blob is None:
            raise ModelError("the session holds no weights for its model")
        model = load_zoo(arch, blob, class_names=names, kind=kind, weights_path=desc.get("weights_path"),
                         input_spec=InputSpec.from_dict(desc["input_spec"]) if "input_spec" in desc else None)
        # What a run recorded about a model it trained (its loss, how it was made) comes back with it.
        model.extra.update({k: v for k, v in desc.items() if k not in _DESCRIPTION_KEYS})
        if kind == "default":
            model.extra["resource"] = desc.get("resource", DEFAULT_MODEL_FILE)
        return model
    spec = InputSpec.from_dict(desc["input_spec"])
    if kind == "torchvision":
        import torchvision

        if arch not in torchvision.models.list_models(module=torchvision.models):
            raise ModelError(f"torchvision has no classification model {arch!r}")
        net = torchvision.models.get_model(arch, weights=None)
        if blob is not None:
            _load_state_dict(net, blob, "session weights")
        elif desc.get("weights_path"):
            _load_state_dict(net, Path(desc["weights_path"]), desc["weights_path"])
        else:
            raise ModelError(f"the session references {arch} weights that are not embedded")
        return LoadedModel("torchvision", arch, net, spec, names, weights_path=desc.get("weights_path"))
    raise ModelError(f"session names an unknown model kind {kind!r}")

