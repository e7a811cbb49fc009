"""Defect descriptions: `facts.py` measures a mask (and its image), `sentences.py` says the
facts in a sentence, `check.py` reads a sentence back and says whether it agrees with a
verdict. Torch-free: the DDQA build, the edge explainer and the reports share them."""
