# Copyright 2026 pilotnet_optimized contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
What ament_xmllint checks for package.xml, and the ROS packages it must declare.

ament_xmllint is not on PyPI, and the schema it names is fetched from download.ros.org, which CI
cannot reach. Checked instead: a well-formed document that points at the format-3 schema and that
catkin_pkg, the parser colcon and rosdep use, reads as a valid format-3 package without a warning;
and every ROS package the code imports is declared in it.
"""

import ast
import xml.etree.ElementTree as ET

from catkin_pkg.package import parse_package
from helpers import linted_python_files, REPO
import pytest

#: ROS 2 packages the Python code may import, each of which package.xml must declare.
ROS_PACKAGES = {
    'rclpy',
    'std_msgs',
    'sensor_msgs',
    'geometry_msgs',
    'nav_msgs',
    'rosgraph_msgs',
    'builtin_interfaces',
    'rcl_interfaces',
    'ament_index_python',
    'launch',
    'launch_ros',
}


@pytest.mark.linter
@pytest.mark.xmllint
def test_package_xml_is_a_valid_format_3_manifest():
    text = (REPO / 'package.xml').read_text()
    root = ET.fromstring(text.encode())  # well-formed, or ParseError names the line
    assert root.tag == 'package' and root.get('format') == '3'
    assert '<?xml-model href="http://download.ros.org/schema/package_format3.xsd"' in text
    warnings: list[str] = []
    package = parse_package(str(REPO), warnings=warnings)
    assert warnings == []
    assert package.name == 'pilotnet_optimized' and package.licenses == ['Apache-2.0']
    assert package.get_build_type() == 'ament_python'
    tests = {d.name for d in package.test_depends}
    assert {
        'ament_copyright',
        'ament_flake8',
        'ament_pep257',
        'ament_xmllint',
        'python3-pytest',
    } <= tests


@pytest.mark.linter
@pytest.mark.xmllint
def test_every_imported_ros_package_is_declared():
    declared = {d.name for d in parse_package(str(REPO)).exec_depends}
    imported = set()
    for path in linted_python_files():
        if path.parent.name == 'test':
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else (
                    [node.module]
                    if isinstance(node, ast.ImportFrom) and node.module and not node.level
                    else []
                )
            )
            imported |= {name.split('.')[0] for name in names} & ROS_PACKAGES
    assert imported - declared == set()
