"""Analytics over the query log: the ``answer`` events joined with feedback and escalations.

* :mod:`~spravka.analytics.querylog` reads the log into rows (and purges it after the retention);
* :mod:`~spravka.analytics.report` turns rows into rates over time, latency, cost and feedback
  figures, CSV and SVG charts;
* :mod:`~spravka.analytics.clusters` groups unanswered and badly rated questions by meaning;
* :mod:`~spravka.analytics.actions` turns a cluster into golden-set items or a KB entry draft.
"""

from spravka.analytics.clusters import Cluster, cluster_vectors, question_clusters
from spravka.analytics.querylog import QueryRow, load_rows, purge
from spravka.analytics.report import build_report, write_csv

__all__ = ["Cluster", "QueryRow", "build_report", "cluster_vectors", "load_rows", "purge", "question_clusters",
           "write_csv"]
