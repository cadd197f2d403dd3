"""The local launcher: a whole mesh (Redis, Galley, Citadel, Mixer, Pilot, demo workloads
with sidecars) as local processes — ``splitmesh up``/``down``/``status``/``proxy-config``/
``demo`` (:mod:`cli.launcher.commands`)."""
