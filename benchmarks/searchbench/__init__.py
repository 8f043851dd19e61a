"""The search-efficiency benchmark's parts (see benchmarks/search_efficiency.py).

Pure parts (space, accounting, stats, report, datasets) import no torch; ``worker`` runs the
trainer in a pool process, ``rea_side`` drives the real ``rea`` CLI.
"""
