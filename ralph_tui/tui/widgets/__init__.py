"""One widget per panel: Tasks, Transcript, Diff, Gates."""
