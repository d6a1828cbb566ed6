"""Training model families here: the arithmetic transformer family of ``mirage train-family`` and
``mirage demo`` (:mod:`mirage.train.arithmetic`) and its character tokenizer
(:mod:`mirage.train.chartok`)."""
