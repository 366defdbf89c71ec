"""Every git call ralph-tui makes, through one audited runner (``repo.run_git``).

Owns: ``repo`` (the runner, diffs, patches, the code-tree id), ``guard`` (``.git`` put back
after an iteration), ``worktrees`` (the parallel workers' checkouts), ``bundles`` (changes
moved to and from Ray nodes, verified), ``branching`` (the run's branch) and ``ignored`` (the
ignored files an iteration touched). May import ``safety``, ``prd`` and the base modules,
never the engine or a face.
"""
