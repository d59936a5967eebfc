"""procl's app: `streamlit run app.py`. Navigation over app_pages/ and the shared sidebar.

The pages live in `app_pages/`, not `pages/`: Streamlit treats a folder named `pages`
next to the entry script as a legacy multipage app on a session's first run, which
would run a deep-linked page without this script (no sidebar, no navigation).
"""
import streamlit as st

from app_pages import _shared

st.set_page_config(page_title="procl", page_icon=":material/route:", layout="wide")

page = st.navigation([
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/explore.py", title="Explore", icon=":material/movie:"),
    st.Page("app_pages/keysteps.py", title="Key-steps", icon=":material/format_list_numbered:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
])
_shared.sidebar()
page.run()
