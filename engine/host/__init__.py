"""The per-host agent: what the CodeDeploy agent does on one host.

DownloadBundle, Install (copy, file_exists_behavior, cleanup file, permissions), hook scripts,
the deployment-root layout and retention. Standard library only and Python 3.8 syntax: this
package is shipped as is to SSH hosts and run there with `python3 -m <package>`, and it runs
in-process for local targets. Imports inside it are relative so it can be copied anywhere.
"""

AGENT_VERSION = "1"
