"""Taking a measured recipe out of the studio: a deployment folder with the evidence behind it.

`export_recipe` writes the artifact, tokenizer, labels, recipe, a runnable `predict.py` and
`evidence.json`; `verify_folder` re-checks such a folder anywhere. Qt-free, like the rest of the core.
"""
