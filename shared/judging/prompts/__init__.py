"""The llm judge's shipped prompts (detector, reasoning harm, response harm, refusal), one text file each."""
