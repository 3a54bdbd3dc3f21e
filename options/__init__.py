"""Command-line options: BaseOptions, TrainOptions, TestOptions."""
