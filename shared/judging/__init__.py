"""Step judging (DESIGN §1.2): the sentence splitter, the judge interface and its back ends.

steps.py       the one sentence splitter with exact offsets (used by judges, intervention and trainer)
base.py        Judge, Judgement (-> common_pb2.Judgement), labels, verdicts, first cue h
rules.py       the embedded default: versioned pattern files in patterns/
classifier.py  MiniLM sentence embeddings (embedding.py) + a trained head; models/ holds the shipped one
llm.py         any OpenAI-compatible chat endpoint with the paper's detector prompt
registry.py    builds a judge by back-end name
corpus/        the labelled train/dev traces and their builder
gold.py, evaluate.py   gold sets (JailbreakBench, XSTest) and the measurements behind `intervene judge evaluate`
"""
