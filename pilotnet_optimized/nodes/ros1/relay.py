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
The ROS 1 half of the bridge: a rospy process that relays raw messages over a socket.

Run by the system Python (``/usr/bin/python3 relay.py --fd N``), never imported by the ROS 2
half: rospy and rclpy cannot share a process. It holds no message logic: messages cross as the
bytes rospy sends and receives (their md5 sums checked by ROS 1 as usual), and the ROS 2 half
converts them (``rosbags``). The ops it answers (JSON headers of :mod:`.wire` frames):

- ``subscribe`` (``topic``, ``type``): every message becomes a ``msg`` frame (the relay's receive
  time ``t``), in order; rospy's queue is unbounded and the socket blocks, so nothing is dropped.
- ``advertise`` (``topic``, ``type``), ``publish`` (``topic``, payload): synchronous publishing,
  so a slow subscriber slows the sender rather than losing messages.
- ``call`` (``service``, ``id``, ``timeout``): call a std_srvs/Empty service; answered with
  ``result`` (``ok``, ``message``).
- ``serve`` (``service``): offer a std_srvs/Empty service whose calls become ``call_in`` frames,
  answered by ``reply`` (``id``, ``ok``, ``message``): a stand-in Gazebo for tests.
- ``connections`` (``topic``): answered with the number of connections of an advertised topic
  (subscribers) or a subscribed one (publishers).
- ``graph``: answered with the master's publishers and services.
- ``shutdown``, or the socket closing: exit.

At start it answers ``ready``, or ``error`` (one line) when no master answers.
"""

import argparse
import socket
import sys
import threading
import time
import warnings

import wire  # the sibling file: stdlib only

_TIMEOUT_S = 30.0


def _raw_class(rospy, type_name):
    """Return a message class with ``type_name``'s md5 sum that carries raw bytes."""
    import roslib.message
    real = roslib.message.get_message_class(type_name)
    if real is None:
        raise ValueError(f'unknown ROS 1 message type {type_name}')

    class Raw(rospy.AnyMsg):
        _type = real._type
        _md5sum = real._md5sum
        _full_text = real._full_text
        __slots__ = ['_buff']

        def serialize(self, buff):
            buff.write(self._buff)

    return Raw


class Relay:
    """The relay's state: publishers, subscribers, services and the calls waiting for replies."""

    def __init__(self, channel, rospy):
        self.ch = channel
        self.rospy = rospy
        self.pubs = {}
        self.subs = {}
        self.services = {}
        self.waiting = {}
        self.counts = {}

    def subscribe(self, topic, type_name):
        def on_msg(msg, topic=topic):
            self.counts[topic] = self.counts.get(topic, 0) + 1
            self.ch.send({'op': 'msg', 'topic': topic, 't': time.time()}, msg._buff)

        self.subs[topic] = self.rospy.Subscriber(
            topic, _raw_class(self.rospy, type_name), on_msg, queue_size=None,
            buff_size=1 << 24, tcp_nodelay=True)

    def advertise(self, topic, type_name, latch=False):
        self.pubs[topic] = (
            self.rospy.Publisher(topic, _raw_class(self.rospy, type_name), queue_size=None,
                                 latch=latch, tcp_nodelay=True),
            _raw_class(self.rospy, type_name))

    def publish(self, topic, payload):
        pub, cls = self.pubs[topic]
        msg = cls()
        msg._buff = payload
        pub.publish(msg)

    def call(self, service, call_id, timeout):
        from std_srvs.srv import Empty
        try:
            self.rospy.wait_for_service(service, timeout=timeout)
        except self.rospy.ROSException:
            self.ch.send({'op': 'result', 'id': call_id, 'ok': False,
                          'message': f'the ROS 1 master offers no {service} after {timeout:g} s'})
            return
        try:
            self.rospy.ServiceProxy(service, Empty)()
            self.ch.send({'op': 'result', 'id': call_id, 'ok': True, 'message': ''})
        except Exception as err:  # ServiceException, a dead server: all one answer
            text = ' '.join(str(err).split()) or type(err).__name__
            self.ch.send({'op': 'result', 'id': call_id, 'ok': False, 'message': text})

    def serve(self, service):
        from std_srvs.srv import Empty, EmptyResponse

        def handle(_request, service=service):
            call_id = f'{service}#{time.monotonic_ns()}'
            event = threading.Event()
            self.waiting[call_id] = [event, None]
            self.ch.send({'op': 'call_in', 'service': service, 'id': call_id})
            if not event.wait(_TIMEOUT_S):
                raise self.rospy.ServiceException(f'{service}: no answer from the bridge')
            reply = self.waiting.pop(call_id)[1]
            if not reply.get('ok'):
                raise self.rospy.ServiceException(reply.get('message') or 'failed')
            return EmptyResponse()

        self.services[service] = self.rospy.Service(service, Empty, handle)

    def reply(self, header):
        entry = self.waiting.get(header['id'])
        if entry is not None:
            entry[1] = header
            entry[0].set()

    def graph(self):
        import rosgraph
        pubs, _subs, srvs = rosgraph.Master(self.rospy.get_name()).getSystemState()
        types = dict(rosgraph.Master(self.rospy.get_name()).getTopicTypes())
        self.ch.send({'op': 'graph',
                      'published': {t: types.get(t, '') for t, _nodes in pubs},
                      'services': sorted(s for s, _nodes in srvs)})


def main(argv=None):
    """Connect to the master, answer ``ready`` and relay until told to stop."""
    parser = argparse.ArgumentParser(prog='relay.py')
    parser.add_argument('--fd', type=int, required=True)
    parser.add_argument('--name', default='pilotnet_ros1_bridge')
    args = parser.parse_args(argv)
    # queue_size=None is synchronous publishing, on purpose: rospy warns about it anyway.
    warnings.filterwarnings('ignore', category=SyntaxWarning)
    ch = wire.Channel(socket.socket(fileno=args.fd))
    try:
        import rosgraph
        import rospy
    except ImportError as err:
        ch.send({'op': 'error', 'message': f'{sys.executable} has no rospy ({err}): install '
                 'python3-rospy (Debian/Ubuntu) or point ros1_python at a ROS 1 Python'})
        return 2
    uri = rosgraph.get_master_uri()
    if not rosgraph.is_master_online(uri):
        ch.send({'op': 'error', 'message': f'no ROS 1 master at {uri} (ROS_MASTER_URI): start'
                 ' roscore, or the Behavior Metrics world, first'})
        return 2
    rospy.init_node(args.name, anonymous=False, disable_signals=True)
    relay = Relay(ch, rospy)
    ch.send({'op': 'ready', 'master': uri, 'node': rospy.get_name()})
    try:
        while True:
            header, payload = ch.recv()
            op = header.get('op')
            if op == 'publish':
                relay.publish(header['topic'], payload)
            elif op == 'subscribe':
                relay.subscribe(header['topic'], header['type'])
            elif op == 'advertise':
                relay.advertise(header['topic'], header['type'], header.get('latch', False))
            elif op == 'call':
                threading.Thread(target=relay.call, daemon=True, args=(
                    header['service'], header['id'], float(header.get('timeout', 5.0)))).start()
            elif op == 'serve':
                relay.serve(header['service'])
            elif op == 'reply':
                relay.reply(header)
            elif op == 'connections':
                topic = header['topic']
                entity = relay.pubs[topic][0] if topic in relay.pubs else relay.subs.get(topic)
                ch.send({'op': 'connections', 'topic': topic,
                         'n': entity.get_num_connections() if entity is not None else 0})
            elif op == 'graph':
                relay.graph()
            elif op == 'shutdown':
                break
    except (wire.ClosedError, OSError):
        pass
    finally:
        rospy.signal_shutdown('bridge stopped')
    return 0


if __name__ == '__main__':
    sys.exit(main())
