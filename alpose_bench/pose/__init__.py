"""Pose: skeletons, keypoint datasets, heatmaps and peaks, the pose models, metrics, and one pass of a model over a
set of images (`pool`). Nothing here knows about active learning."""
