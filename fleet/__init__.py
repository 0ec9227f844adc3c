"""AdReel fleet: the pack's API-format workflows on many ComfyUI servers, through Dramatiq and Redis.

Plain Python, run from the pack's folder as ``python -m fleet …``; ComfyUI's
node loading never imports it (the pack's ``__init__.py`` imports only
``nodes.comfy_nodes``). A worker process is paired with one ComfyUI server;
workers share nothing but Redis (the Dramatiq broker and the job records) and
the S3-compatible store the workflows' AssetUpload nodes write to.

Modules: ``config`` (settings from the environment), ``jobs`` (workflow +
brief rows → jobs with content-derived ids), ``records`` (job records, the
queue cap, cancel, history), ``broker`` (the Dramatiq broker and actor),
``comfy`` (one ComfyUI server over HTTP — its jobs API where it has one — and its websocket), ``runner`` (one
job on one ComfyUI), ``worker`` (the worker process), ``objects`` (the job's
objects in the store), ``cli``.
"""
