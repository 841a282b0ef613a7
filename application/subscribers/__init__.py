"""The runtime that hosts subscribers: read models and process managers as
tracked consumers of the services' logs.

* ``runner``: a thread that follows one log for one subscriber, with its
  leadership (one active instance per store) and its fault policy;
* ``shared_log``: one reader per log and process, shared by its followers;
* ``hosting``: where subscribers run (a helper process, threads, workers) and
  how callers wait for them; ``helper_process`` and ``helper_main`` are the two
  sides of the embedded shop's helper process;
* ``payment_deadline_ticker`` and ``chain_keeper``: the time-driven and the
  log-chaining background workers hosted beside them;
* ``status``, ``dead_letters`` and ``rebuild``: what operators do to them.
"""
