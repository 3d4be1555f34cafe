r"""Evaluation of architectures: datasets, teachers, lock-step distillation, fine-tuning, reward."""

from botorch_archsearch.evaluation.cost import (
    TRAIN_FACTOR,
    VD_TRAIN_FACTOR,
    evaluation_cost,
    images_per_epoch,
    training_cost,
)
from botorch_archsearch.evaluation.data import (
    DATASET_NAMES,
    DEBIAN_FASHION_MNIST,
    DEFAULT_ROOT,
    ImageDataset,
    augment_batch,
    load_dataset,
    synthetic_dataset,
)
from botorch_archsearch.evaluation.distill import KD_LOSSES, StudentResult, accuracy, evaluate_students, kd_loss
from botorch_archsearch.evaluation.finetune import TrainResult, finetune, train_classifier
from botorch_archsearch.evaluation.progress import Progress
from botorch_archsearch.evaluation.reward import FAILED_REWARD, REWARD_KINDS, REWARD_MEASURES, compression, reward
from botorch_archsearch.evaluation.teachers import (
    CACHE_ENV,
    Teacher,
    dataset_fingerprint,
    default_cache_dir,
    load_teacher,
    trained_teacher,
)

__all__ = [
    "CACHE_ENV",
    "DATASET_NAMES",
    "DEBIAN_FASHION_MNIST",
    "DEFAULT_ROOT",
    "FAILED_REWARD",
    "ImageDataset",
    "KD_LOSSES",
    "Progress",
    "REWARD_KINDS",
    "REWARD_MEASURES",
    "StudentResult",
    "TRAIN_FACTOR",
    "Teacher",
    "TrainResult",
    "VD_TRAIN_FACTOR",
    "accuracy",
    "augment_batch",
    "compression",
    "dataset_fingerprint",
    "default_cache_dir",
    "evaluate_students",
    "evaluation_cost",
    "finetune",
    "images_per_epoch",
    "kd_loss",
    "load_dataset",
    "load_teacher",
    "reward",
    "synthetic_dataset",
    "train_classifier",
    "trained_teacher",
    "training_cost",
]
