"""The product layer: what turns the lessons into a tool, built on top of every lesson module.

    cli.py             `python -m minitransformer train | generate | export | course`
    presets.py         named training recipes (the settings behind each bundled model)
    training_tasks.py  where a training batch comes from and how it becomes a loss (CLM, MLM, seq2seq)
    pretrained.py      the loader of the bundled models (their files are in minitransformer/pretrained/)
    pipelines.py       `pipeline(...)`, Hugging Face's high-level interface
    evaluation.py      scoring a trained model on held-out data
    summary.py         counting parameters, printing a model's layout
    exercises.py       graded exercises (`mt.exercise`) and the student version of the notebooks
    families.py        published model configurations (GPT-1/2/3, MT-NLG, OPT) with sources (notebook 12)
    assistant.py       a writing assistant: ranked suggestions, stopping, bad words (notebook 13)

Nothing below this package imports from it; the public names are re-exported as `mt.X`.
"""
