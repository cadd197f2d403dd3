"""The local launcher: a whole mesh (Galley, Pilot, demo workloads with sidecars) as local
processes — ``splitmesh up``/``down``/``status``/``proxy-config``/``demo``
(:mod:`cli.launcher.commands`)."""
