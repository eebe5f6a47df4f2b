"""Fleet upgrades: rings of stacks upgraded in order, each soaked and gating the next.

    model    the fleet file (rings, soak, maxParallel, re-gate settings), validated
    stacks   where each stack's config, journal and platform come from (kubernetes, rehearsal)
    journal  the fleet's own state and event log, above one journal per stack
    driver   rings, the stacks' orchestrators, soak with re-gating, stop-the-line, resume
    view     the live rings × stacks × phase view, tables and the JSON document
    cli      `meshlift fleet plan|upgrade|status|resume`
"""
