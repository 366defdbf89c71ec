"""``executor = "ray"``: each story in an actor on a Ray cluster.

Owns: ``executor`` (the driver's side: ``RayExecutor``, verified changes), ``node`` (the
actor on a node: ``StoryRunner``) and ``pool`` (warm actors and their placement). Imports
``ray``, so nothing imports this package unless the run uses it (``executors.EXECUTORS``).
"""
