"""The intervention algorithm (DESIGN §1.3-1.4), independent of transport: cut, branch, judge, pair."""
