"""Every name of a run folder and of a seed group, stated once.

    RUN/config.yaml         every setting (rerun with --config)
    RUN/metrics.csv         one row per finished epoch, columns METRIC_COLUMNS
    RUN/curves.png          loss and accuracy against epoch
    RUN/checkpoints/        last.pt after every epoch (and on interruption), best.pt at the best validation accuracy
    RUN/summary.json        final figures, written when the run ends
    RUN/tensorboard/        event files, when the tensorboard package is installed
    RUN/.lock               host, process id and start time of the training writing here, while it runs
    RUN/evaluation/, RUN/explained/, RUN/model.onnx
                            where the commands a finished run suggests (evaluate, predict, export) write

    GROUP/config.yaml       the group's settings (each seed folder's own differs only in `seed`)
    GROUP/seed-N/           one run folder per seed
    GROUP/group.json        the seeds, each run's figures and their mean ± std
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# train_seconds: the epoch's training alone; seconds: with its validation, what the user waited.
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "train_seconds", "seconds")
_SEED_FOLDER = "seed-{seed}"
_SEED_FOLDER_PATTERN = re.compile(r"seed-(\d+)")


@dataclass(frozen=True)
class RunPaths:
    """The files of the run folder `root`."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def curves(self) -> Path:
        return self.root / "curves.png"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation"

    @property
    def evaluation_report(self) -> Path:
        """What `evaluate --output RUN/evaluation` writes, the command a finished run suggests."""
        return self.evaluation / "evaluation.json"

    @property
    def explained(self) -> Path:
        return self.root / "explained"

    @property
    def onnx(self) -> Path:
        return self.root / "model.onnx"

    @property
    def ours(self) -> tuple[Path, ...]:
        """What training writes here and replaces with --overwrite: never anything else in the folder."""
        return self.config, self.metrics, self.curves, self.summary, self.checkpoints, self.tensorboard

    def relative(self, path: Path) -> Path:
        """`path` as the user sees it inside any run folder, such as checkpoints/last.pt."""
        return path.relative_to(self.root)


@dataclass(frozen=True)
class GroupPaths:
    """The files of the seed group `root`."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def summary(self) -> Path:
        return self.root / "group.json"

    def seed(self, seed: int) -> RunPaths:
        return RunPaths(self.root / self.seed_folder(seed))

    @staticmethod
    def seed_folder(seed: int | str) -> str:
        """The name of a seed's folder; "N" gives the pattern for messages."""
        return _SEED_FOLDER.format(seed=seed)

    def seed_folders(self) -> dict[int, Path]:
        """The seed folders there are now, by seed."""
        if not self.root.is_dir():
            return {}
        return {int(match.group(1)): path for path in self.root.iterdir()
                if path.is_dir() and (match := _SEED_FOLDER_PATTERN.fullmatch(path.name))}
