"""Judging a dataset: how a face-recognition pipeline independent of the generation path sees its images."""

from synthcore.evaluation.aligned_judge import AlignedJudge, JudgedImages, confusable_pairs

__all__ = ["AlignedJudge", "JudgedImages", "confusable_pairs"]
