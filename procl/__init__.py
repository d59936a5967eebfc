"""procl: self-supervised multi-task procedure learning from instructional videos.

Implements Elhamifar & Huynh, "Self-Supervised Multi-Task Procedure Learning from
Instructional Videos" (ECCV 2020). The library never imports streamlit (but for
`procl.bench_explore`, which times the app's Explore page through Streamlit's AppTest);
the app in `app.py` and `app_pages/` is a thin layer over it.
"""

__version__ = "0.1.0"


class ProclError(Exception):
    """A user-facing error: the message names the file or value and what to do."""
