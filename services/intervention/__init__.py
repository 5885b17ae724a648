"""The intervention service: safe rollouts for clients, bulk jobs, and the pipeline workers that make pairs."""
