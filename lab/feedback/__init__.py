"""Human feedback: campaigns of pairwise comparisons, the annotators' queue, agreement, the human
leaderboard and the export to a preference dataset. Workflows are in actions.py."""
