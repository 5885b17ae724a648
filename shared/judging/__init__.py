"""Step judging (DESIGN §1.2): the sentence splitter, the judge interface and its back ends.

steps.py       the one sentence splitter with exact offsets (used by judges, intervention and trainer)
base.py        Judge, Judgement (-> common_pb2.Judgement), labels, verdicts, first cue h
rules.py       the embedded default: versioned pattern files in patterns/
classifier.py  MiniLM sentence embeddings (embedding.py) in context + a trained head; models/ holds the shipped one
training.py    the classifier's training set, grouped cross-validation and the rebuild of the shipped model
llm.py         any OpenAI-compatible chat endpoint with the paper's detector prompt; prompts/ holds the prompts
cascade.py     the classifier first, the llm judge for the traces it is unsure of
registry.py    builds a judge by back-end name
corpus/        the labelled traces (composed train/dev, outside writers' pools, the embedded model's own)
gold.py, evaluate.py   gold sets (JailbreakBench, XSTest, STAR-1) and the measurements behind `intervene judge evaluate`
"""
