"""Repeats of admitted requests, folded into the readiness books a run at a time.

A polling integration sends the same GET again and again; the gateway admits its repeats
(sandbox/gateway/admission.py). Observing each one on its own costs more than the gateway now spends on it, so
consecutive repeats of the same path, with the same status (and, for Login's discovery and JWKS, from the same
peer), are queued as one run (a count, the first and last request-log entries, their virtual times) and folded
into the books in one step (EvidenceBook.observe_run, LoginBook.fetched_run), with the same effects as observing
each. Order is kept: a run is folded before any other observation, any domain event, and any reader
(EvidenceBook.settle); a run holds at most RUN requests and the queue at most RUN runs.
"""

from __future__ import annotations

from aiohttp import web

from sandbox.readiness.evidence import EvidenceBook, Proof
from sandbox.readiness.login_evidence import ANONYMOUS, LoginBook

RUN = 64  # requests per run, and runs queued, before they are folded in (EvidenceBook keeps 64 poll times)


class Repeats:
    """The queue of runs: [admission, path, status, peer, count, first request, first entry, last entry,
    virtual times]."""

    def __init__(self, book: EvidenceBook, logins: LoginBook | None) -> None:
        self.book, self.logins = book, logins
        self.runs: list[list] = []

    def add(self, request: web.Request, entry: tuple, admission) -> None:
        runs = self.runs
        # Who fetched matters only for the routes that take no credentials (Login's discovery and JWKS, by peer).
        peer = (request.remote or "") if admission.keyset is None else None
        if runs:
            run = runs[-1]
            if run[0] is admission and run[2] == entry[10] and run[1] == entry[5] and run[3] == peer:
                run[4] += 1
                run[7] = entry
                run[8].append(entry[2])
                if run[4] >= RUN:
                    self.settle()
                return
            if len(runs) >= RUN:
                self.settle()
        self.runs.append([admission, entry[5], entry[10], peer, 1, request, entry, entry, [entry[2]]])

    def settle(self) -> None:
        """Folds every queued run into the books, oldest first."""
        runs, self.runs = self.runs, []
        book, logins = self.book, self.logins
        for admission, _, status, peer, count, request, first, last, whens in runs:
            route = first[6].name
            if route in ANONYMOUS:  # Login's discovery and JWKS: who fetched them, and when
                book.dirty = True
                if logins is not None:  # no status (interrupted): as observe_login, a 0
                    logins.fetched_run(route, admission.env._value_, peer, status or 0,
                                       Proof(last[0], None, last[2], last[1]), whens)
            else:
                book.observe_run(admission, route, status, request.headers, request.match_info, count, first, last,
                                 whens)

    def drop(self) -> None:
        """For a book about to be emptied or replaced (reset, load): what is queued belongs to the old one."""
        self.runs = []
